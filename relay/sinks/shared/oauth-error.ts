/**
 * An OAuth 2.0 token endpoint's error answer (RFC 6749 section 5.2:
 * `{ error, error_description? }`) in words. Only those two fields are ever used: a
 * body that is not such JSON (a proxy page) is reported by its status alone, never
 * quoted, since it could echo the request.
 */
export interface OAuthError {
  /** The `error` code, when the answer carried one (invalid_client, ...). */
  error: string | undefined;
  /** `error: description`, or `HTTP <status>` without an error code. */
  detail: string;
}

export function describeOAuthError(status: number, text: string): OAuthError {
  let error: string | undefined;
  let description: string | undefined;
  try {
    const body = JSON.parse(text) as { error?: unknown; error_description?: unknown };
    if (typeof body.error === 'string') error = body.error;
    if (typeof body.error_description === 'string') description = body.error_description;
  } catch {
    // Not JSON (a proxy page): only the status is reported, never the body.
  }
  return { error, detail: error ? `${error}${description ? `: ${description}` : ''}` : `HTTP ${status}` };
}
