/**
 * The SOQL subset the emulator's Query resource understands:
 *
 *   SELECT field (, field)* FROM Object [WHERE field IN ('a', 'b', ...) | WHERE field = 'a']
 *
 * Keywords are case-insensitive; string literals use SOQL's escape sequences (`\'`, `\\`,
 * `\"`, `\n`, `\r`, `\t`, `\b`, `\f`, `\uXXXX`; any other backslash is an error). Anything
 * else is refused as Salesforce refuses a query it cannot parse: 400 MALFORMED_QUERY.
 * Field and object names are checked by the caller against the schema (INVALID_FIELD,
 * INVALID_TYPE).
 */

export interface SoqlQuery {
  fields: string[];
  object: string;
  where?: { field: string; values: string[] };
}

export type SoqlParse = { ok: true; query: SoqlQuery } | { ok: false; message: string };

type Token = { kind: 'word'; text: string } | { kind: 'string'; text: string } | { kind: 'punct'; text: ',' | '(' | ')' | '=' } | { kind: 'end'; text: '<EOF>' };

const ESCAPES: Record<string, string> = { n: '\n', N: '\n', r: '\r', R: '\r', t: '\t', T: '\t', b: '\b', B: '\b', f: '\f', F: '\f', '"': '"', "'": "'", '\\': '\\' };

function tokenize(text: string): Token[] | string {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === ',' || c === '(' || c === ')' || c === '=') {
      tokens.push({ kind: 'punct', text: c });
      i++;
    } else if (/[A-Za-z_]/.test(c)) {
      const word = /^[A-Za-z_][A-Za-z0-9_.]*/.exec(text.slice(i))![0];
      tokens.push({ kind: 'word', text: word });
      i += word.length;
    } else if (c === "'") {
      let value = '';
      i++;
      for (;;) {
        if (i >= text.length) return 'unterminated string literal';
        const d = text[i]!;
        if (d === "'") break;
        if (d === '\\') {
          const e = text[i + 1] ?? '';
          if (e === 'u' && /^[0-9A-Fa-f]{4}$/.test(text.slice(i + 2, i + 6))) {
            value += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16));
            i += 6;
            continue;
          }
          const escaped = ESCAPES[e];
          if (escaped === undefined) return `Invalid string literal '${text.slice(i, i + 2)}'. Illegal character sequence '${text.slice(i, i + 2)}' in string literal.`;
          value += escaped;
          i += 2;
          continue;
        }
        value += d;
        i++;
      }
      i++;
      tokens.push({ kind: 'string', text: value });
    } else {
      return `unexpected token: '${c}'`;
    }
  }
  tokens.push({ kind: 'end', text: '<EOF>' });
  return tokens;
}

export function parseSoql(text: string): SoqlParse {
  const tokens = tokenize(text);
  if (typeof tokens === 'string') return { ok: false, message: tokens };
  let at = 0;
  const peek = (): Token => tokens[at]!;
  const unexpected = (): SoqlParse => ({ ok: false, message: `unexpected token: '${peek().text}'` });
  const keyword = (word: string): boolean => {
    const t = peek();
    if (t.kind === 'word' && t.text.toUpperCase() === word) {
      at++;
      return true;
    }
    return false;
  };
  const punct = (p: string): boolean => {
    const t = peek();
    if (t.kind === 'punct' && t.text === p) {
      at++;
      return true;
    }
    return false;
  };
  const name = (): string | undefined => {
    const t = peek();
    if (t.kind !== 'word' || ['SELECT', 'FROM', 'WHERE', 'IN'].includes(t.text.toUpperCase())) return undefined;
    at++;
    return t.text;
  };

  if (!keyword('SELECT')) return unexpected();
  const fields: string[] = [];
  do {
    const field = name();
    if (field === undefined) return unexpected();
    fields.push(field);
  } while (punct(','));
  if (!keyword('FROM')) return unexpected();
  const object = name();
  if (object === undefined) return unexpected();
  const query: SoqlQuery = { fields, object };
  if (keyword('WHERE')) {
    const field = name();
    if (field === undefined) return unexpected();
    const values: string[] = [];
    if (punct('=')) {
      const t = peek();
      if (t.kind !== 'string') return unexpected();
      at++;
      values.push(t.text);
    } else if (keyword('IN')) {
      if (!punct('(')) return unexpected();
      do {
        const t = peek();
        if (t.kind !== 'string') return unexpected();
        at++;
        values.push(t.text);
      } while (punct(','));
      if (!punct(')')) return unexpected();
    } else {
      return unexpected();
    }
    query.where = { field, values };
  }
  if (peek().kind !== 'end') return unexpected();
  return { ok: true, query };
}
