/**
 * `plantlink`: the one executable that installers ship. Subcommands:
 *   agent [run] --config FILE       run the plant agent
 *   agent check --config FILE       validate a config and exit
 *   agent status --config FILE      backlog, quarantine and source state from the outbox
 *   agent pki --config FILE [--source NAME]        OPC UA certificates: own, trusted, rejected
 *   agent trust --config FILE [--source NAME] (--all-rejected | --file CERT)
 *                                   trust a rejected OPC UA server certificate
 *   relay [run] --config FILE       run the relay
 *   relay check --config FILE
 *   relay add-agent --id ID --plant PLANT     issue an agent token
 *   relay health --config FILE      exit 0 when the running relay is ready (container HEALTHCHECK)
 *   relay dead-letters --config FILE [--replay all|SEQ] [--sink NAME]
 *   relay agents --config FILE [--url URL] [--json]  connected agents, backlog and lag (asks the running relay)
 *   relay reconcile --day YYYY-MM-DD [--plant P] [--sink S] [--no-verify] [--repair] [--json]
 *                                                    ledgers vs sink confirmations vs the targets (asks the running relay)
 *   demo                            everything on loopback with a simulated plant and CRM
 *   --version                       the version (the single executable's smoke test)
 */
import { Command, Option } from 'commander';
import { ConfigError, loadConfigFile } from '../protocols/config-file.js';
import { createLogger, type Logger } from '../protocols/log.js';
import { AgentConfig } from '../agent/config.js';
import { RelayConfig } from '../relay/config.js';
import packageJson from '../package.json' with { type: 'json' };

const program = new Command('plantlink')
  .description('Plant-to-CRM event integration: agent, relay and demo.')
  .version(packageJson.version, '-V, --version', 'print the plantlink version')
  .showHelpAfterError();

function loadOrExit<T>(file: string, load: (file: string) => T): T {
  try {
    return load(file);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}

/** Runs a service until SIGTERM/SIGINT (systemd sends SIGTERM), then stops it gracefully. */
async function runService(logger: Logger, start: () => Promise<{ stop(): Promise<void> }>): Promise<void> {
  process.on('uncaughtException', (err) => {
    logger.fatal({ err: err.stack ?? String(err) }, 'uncaught exception; exiting so the service manager restarts us');
    process.exit(70);
  });
  process.on('unhandledRejection', (err) => {
    logger.fatal({ err: err instanceof Error ? (err.stack ?? err.message) : String(err) }, 'unhandled rejection; exiting');
    process.exit(70);
  });
  const service = await start();
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal; exiting now');
      process.exit(130);
    }
    stopping = true;
    logger.info({ signal }, 'stopping');
    const force = setTimeout(() => process.exit(1), 20_000);
    force.unref();
    service.stop().then(
      () => process.exit(0),
      (e) => {
        logger.error({ err: String(e) }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

const configOption = () => new Option('-c, --config <file>', 'config file (YAML)').makeOptionMandatory();

const agent = program.command('agent').description('The plant agent.');
agent
  .command('run', { isDefault: true })
  .description('Run the agent.')
  .addOption(configOption())
  .action(async (opts: { config: string }) => {
    const config = loadOrExit(opts.config, (f) => loadConfigFile(f, AgentConfig));
    const logger = createLogger('plantlink-agent', { level: config.log.level });
    const { Agent } = await import('../agent/agent.js');
    await runService(logger, async () => {
      const a = new Agent(config, { logger });
      await a.start();
      return a;
    });
  });
agent
  .command('check')
  .description('Validate an agent config and exit (0 = valid, 2 = invalid).')
  .addOption(configOption())
  .action((opts: { config: string }) => {
    const config = loadOrExit(opts.config, (f) => loadConfigFile(f, AgentConfig));
    process.stdout.write(`${opts.config}: valid (agent ${config.agent.id}, plant ${config.agent.plant}, ${config.sources.length} source(s))\n`);
  });
agent
  .command('status')
  .description('Outbox backlog, oldest pending event, uplink state, each source\'s health and quarantined events.')
  .addOption(configOption())
  .option('--json', 'machine-readable output')
  .action(async (opts: { config: string; json?: boolean }) => {
    const config = loadOrExit(opts.config, (f) => loadConfigFile(f, AgentConfig));
    const { Outbox } = await import('../agent/outbox/outbox.js');
    const { join } = await import('node:path');
    const { readFileSync } = await import('node:fs');
    const outbox = new Outbox({ path: join(config.agent.dataDir, 'outbox.sqlite'), plant: config.agent.plant, maxBytes: config.outbox.maxBytes, maxEvents: config.outbox.maxEvents, onFull: config.outbox.onFull });
    const stats = outbox.stats();
    const rejected = outbox.listRejected(20).map(({ body: _body, ...r }) => r);
    outbox.close();
    // Live state (sources, uplink) comes from the running agent's status.json.
    const { formatAgentStatus } = await import('../agent/status-report.js');
    let live: import('../agent/status-report.js').LiveStatus | undefined;
    try {
      live = JSON.parse(readFileSync(join(config.agent.dataDir, 'status.json'), 'utf8'));
    } catch {
      live = undefined;
    }
    if (opts.json) {
      const backlog = { pending: stats.pending, oldestPendingAgeMs: stats.oldestPendingMs === undefined ? undefined : Math.max(0, Date.now() - stats.oldestPendingMs) };
      return void process.stdout.write(`${JSON.stringify({ backlog, outbox: stats, rejected, live }, null, 2)}\n`);
    }
    process.stdout.write(formatAgentStatus({ outbox: stats, rejected, live }));
  });

agent
  .command('pki')
  .description('OPC UA certificates of each source: our own, the trusted and the rejected server certificates (subject, thumbprint, expiry).')
  .addOption(configOption())
  .option('--source <name>', 'only this OPC UA source')
  .option('--json', 'machine-readable output')
  .action(async (opts: { config: string; source?: string; json?: boolean }) => {
    const config = loadOrExit(opts.config, (f) => loadConfigFile(f, AgentConfig));
    const { opcuaPkiFolders, listFolders, formatListing } = await import('../agent/sources/opcua/trust.js');
    const folders = listFolders(opcuaPkiFolders(config.sources, config.agent.dataDir, opts.source));
    if (opts.json) return void process.stdout.write(`${JSON.stringify(folders, null, 2)}\n`);
    process.stdout.write(folders.length === 0 ? 'no OPC UA source in this config\n' : formatListing(folders));
  });
agent
  .command('trust')
  .description('Trust a rejected OPC UA server certificate: moves it from <pki>/rejected to <pki>/trusted/certs. A running agent uses it at its next connection attempt. Check the thumbprint with the server first (plantlink agent pki).')
  .addOption(configOption())
  .option('--source <name>', 'only the PKI folder of this OPC UA source')
  .addOption(new Option('--all-rejected', 'every rejected certificate').conflicts('file'))
  .addOption(new Option('--file <cert>', 'a certificate file (path, or file name in rejected/), or the leading digits of its thumbprint').conflicts('allRejected'))
  .action(async (opts: { config: string; source?: string; allRejected?: boolean; file?: string }) => {
    const config = loadOrExit(opts.config, (f) => loadConfigFile(f, AgentConfig));
    const { opcuaPkiFolders, listFolders, formatListing, trustInFolders } = await import('../agent/sources/opcua/trust.js');
    const folders = opcuaPkiFolders(config.sources, config.agent.dataDir, opts.source);
    if (!opts.allRejected && !opts.file) {
      process.stderr.write(`say which certificate: --file <cert> or --all-rejected\n\n${formatListing(listFolders(folders))}`);
      process.exitCode = 2;
      return;
    }
    try {
      const results = await trustInFolders(folders, opts.allRejected ? { all: true } : { file: opts.file! });
      let n = 0;
      for (const r of results) {
        for (const c of r.trusted) {
          n++;
          process.stdout.write(`trusted ${c.thumbprint} ${c.subject}\n  now ${c.file}\n`);
        }
      }
      process.stdout.write(n === 0 ? 'no rejected certificate to trust\n' : `${n} certificate(s) trusted; a running agent uses them at its next connection attempt\n`);
    } catch (e) {
      process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 2;
    }
  });

const relay = program.command('relay').description('The cloud relay.');
relay
  .command('run', { isDefault: true })
  .description('Run the relay.')
  .addOption(configOption())
  .action(async (opts: { config: string }) => {
    const config = loadOrExit(opts.config, (f) => loadConfigFile(f, RelayConfig));
    const logger = createLogger('plantlink-relay', { level: config.log.level });
    const { Relay } = await import('../relay/relay.js');
    await runService(logger, async () => {
      const r = new Relay(config, { logger });
      await r.start();
      return r;
    });
  });
relay
  .command('check')
  .description('Validate a relay config and exit (0 = valid, 2 = invalid).')
  .addOption(configOption())
  .action((opts: { config: string }) => {
    const config = loadOrExit(opts.config, (f) => loadConfigFile(f, RelayConfig));
    process.stdout.write(`${opts.config}: valid (${config.agents.length} agent(s), ${config.sinks.length} sink(s), ${config.routes.length} route(s))\n`);
  });
relay
  .command('health')
  .description('Ask the relay running on this machine whether it is ready (GET /readyz on its port): exit 0 = ready, 1 = not. For container health checks and monitors.')
  .addOption(configOption())
  .action(async (opts: { config: string }) => {
    const config = loadOrExit(opts.config, (f) => loadConfigFile(f, RelayConfig));
    const { relayApiUrl } = await import('../relay/api/client.js');
    const { probeReady } = await import('./health.js');
    const { ready, detail } = await probeReady(relayApiUrl(config));
    (ready ? process.stdout : process.stderr).write(`${ready ? 'ready' : 'not ready'}: ${detail}\n`);
    process.exitCode = ready ? 0 : 1;
  });
relay
  .command('add-agent')
  .description('Issue a token for a new agent: prints the token (for the agent config) and the entry for the relay config.')
  .requiredOption('--id <id>', 'agent id')
  .requiredOption('--plant <plant>', 'plant the agent speaks for')
  .action(async (opts: { id: string; plant: string }) => {
    const { issueToken, AgentCredential } = await import('../relay/ingress/agent-auth.js');
    const { token, tokenHash } = issueToken(opts.id);
    AgentCredential.parse({ id: opts.id, plant: opts.plant, tokenHash });
    process.stdout.write(
      `# agent config (uplink.token), keep secret:\n${token}\n\n# relay config, under agents:\n- id: ${opts.id}\n  plant: ${opts.plant}\n  tokenHash: ${tokenHash}\n`,
    );
  });
relay
  .command('add-api-token')
  .description('Issue a token for the operator HTTP API: prints the token and the entry for the relay config (api.tokens).')
  .requiredOption('--name <name>', 'who holds it (written to the audit log)')
  .addOption(new Option('--role <role>', 'viewer or operator').choices(['viewer', 'operator']).default('viewer'))
  .action(async (opts: { name: string; role: string }) => {
    const { randomBytes } = await import('node:crypto');
    const { hashToken } = await import('../relay/ingress/agent-auth.js');
    const token = `plk_${randomBytes(32).toString('base64url')}`;
    process.stdout.write(`# keep secret; send as "Authorization: Bearer <token>":\n${token}\n\n# relay config, under api.tokens:\n- name: ${opts.name}\n  role: ${opts.role}\n  tokenHash: ${hashToken(token)}\n`);
  });
relay
  .command('agents')
  .description('Agents registered at the relay: connected or not, last seen, backlog at the agent and lag per plant. Asks the running relay (GET /v1/agents, viewer token).')
  .option('-c, --config <file>', 'relay config (YAML): where the relay listens')
  .option('--url <url>', 'the relay\'s HTTP API, e.g. https://relay.example.com:8443 (default: from --config)')
  .option('--token <token>', 'API token (viewer or operator); prefer the environment variable PLANTLINK_API_TOKEN, which other users cannot see in the process list')
  .option('--ca <file>', 'PEM certificate(s) to trust for https besides the system CAs (default with --config: the relay\'s own certificate)')
  .option('--json', 'machine-readable output')
  .action(async (opts: { config?: string; url?: string; token?: string; ca?: string; json?: boolean }) => {
    const config = opts.config ? loadOrExit(opts.config, (f) => loadConfigFile(f, RelayConfig)) : undefined;
    const token = opts.token ?? process.env.PLANTLINK_API_TOKEN;
    if (!config && !opts.url) return fail('say which relay: --config FILE or --url URL');
    if (!token) return fail('an API token is needed: set PLANTLINK_API_TOKEN (or --token); issue one with `plantlink relay add-api-token`');
    const { apiGet, relayApiUrl } = await import('../relay/api/client.js');
    const { formatAgents } = await import('../relay/agents/agents-table.js');
    const caFiles = opts.ca ? [opts.ca] : config?.relay.listen.tls ? [config.relay.listen.tls.certFile] : [];
    try {
      const { agents } = await apiGet<{ agents: import('../relay/agents/agents-table.js').AgentRow[] }>({ baseUrl: opts.url ?? relayApiUrl(config!), token, caFiles }, '/v1/agents');
      process.stdout.write(opts.json ? `${JSON.stringify(agents, null, 2)}\n` : formatAgents(agents));
    } catch (e) {
      fail(e instanceof Error ? e.message : String(e), 1);
    }
    function fail(message: string, code = 2): void {
      process.stderr.write(`${message}\n`);
      process.exitCode = code;
    }
  });
relay
  .command('reconcile')
  .description(
    'Compare, for one day (UTC, by event time), the agents\' ledgers, what each sink confirmed and (by default) what the targets hold, read back by external id. Lists missing, duplicated and stale records per order; --repair re-sends what is missing or stale and deletes duplicates. Asks the running relay (viewer token; --repair needs an operator token). Exit code 1 when drift is found.',
  )
  .requiredOption('--day <YYYY-MM-DD>', 'the day to reconcile (UTC)')
  .option('--plant <plant>', 'only this plant')
  .option('--sink <lane>', 'only this sink (or route lane `<sink>:<route>`)')
  .option('--no-verify', 'do not read the targets back; compare the ledgers with the sinks\' confirmations only')
  .option('--repair', 'repair what the report finds (operator token)')
  .option('-c, --config <file>', 'relay config (YAML): where the relay listens')
  .option('--url <url>', 'the relay\'s HTTP API (default: from --config)')
  .option('--token <token>', 'API token; prefer the environment variable PLANTLINK_API_TOKEN')
  .option('--ca <file>', 'PEM certificate(s) to trust for https besides the system CAs (default with --config: the relay\'s own certificate)')
  .option('--json', 'machine-readable output')
  .action(async (opts: { day: string; plant?: string; sink?: string; verify: boolean; repair?: boolean; config?: string; url?: string; token?: string; ca?: string; json?: boolean }) => {
    const config = opts.config ? loadOrExit(opts.config, (f) => loadConfigFile(f, RelayConfig)) : undefined;
    const token = opts.token ?? process.env.PLANTLINK_API_TOKEN;
    const fail = (message: string, code = 2): void => {
      process.stderr.write(`${message}\n`);
      process.exitCode = code;
    };
    if (!config && !opts.url) return fail('say which relay: --config FILE or --url URL');
    if (!token) return fail('an API token is needed: set PLANTLINK_API_TOKEN (or --token); issue one with `plantlink relay add-api-token`');
    const { apiGet, apiPost, relayApiUrl } = await import('../relay/api/client.js');
    const { formatReport, formatRepair } = await import('../relay/reconcile/report-table.js');
    type Report = import('../relay/reconcile/reconcile.js').ReconcileReport;
    type Repair = import('../relay/reconcile/reconcile.js').RepairResult;
    const caFiles = opts.ca ? [opts.ca] : config?.relay.listen.tls ? [config.relay.listen.tls.certFile] : [];
    // Reading a day back from a CRM takes a while: one call per 100-200 records.
    const client = { baseUrl: opts.url ?? relayApiUrl(config!), token, caFiles, timeoutMs: 300_000 };
    try {
      if (opts.repair) {
        const body = { day: opts.day, ...(opts.plant ? { plant: opts.plant } : {}), ...(opts.sink ? { lane: opts.sink } : {}) };
        const { report, repair } = await apiPost<{ report: Report; repair: Repair }>(client, '/v1/reconcile/repair', body);
        process.stdout.write(opts.json ? `${JSON.stringify({ report, repair }, null, 2)}\n` : `${formatReport(report)}\n${formatRepair(repair)}`);
        if (repair.errors.length) process.exitCode = 1;
        return;
      }
      const q = new URLSearchParams({ day: opts.day });
      if (opts.plant) q.set('plant', opts.plant);
      if (opts.sink) q.set('lane', opts.sink);
      if (!opts.verify) q.set('verify', 'false');
      const report = await apiGet<Report>(client, `/v1/reconcile?${q}`);
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
      const drift = report.findings.some((f) => f.kind !== 'pending');
      if (drift) process.exitCode = 1;
    } catch (e) {
      fail(e instanceof Error ? e.message : String(e), 1);
    }
  });
relay
  .command('dead-letters')
  .description('List dead letters (events a sink refused permanently), or replay them after a fix.')
  .addOption(configOption())
  .option('--sink <name>', 'only this sink')
  .option('--code <code>', 'only this error code, e.g. FIELD_CUSTOM_VALIDATION_EXCEPTION')
  .option('--subject <subject>', 'only this business key, e.g. work-order/WO-1001')
  .option('--show <seq>', 'show one dead letter with its event')
  .option('--replay <what>', '"all" (of those the other options select), or the sequence number of one dead letter')
  .option('--json', 'machine-readable output')
  .action(async (opts: { config: string; sink?: string; code?: string; subject?: string; show?: string; replay?: string; json?: boolean }) => {
    const config = loadOrExit(opts.config, (f) => loadConfigFile(f, RelayConfig));
    const { createStore } = await import('../relay/store/open-store.js');
    // The relay's configured store: the SQLite file, or the database its replicas share.
    const inbox = createStore(config.relay.store, config.relay.dataDir);
    try {
      await inbox.init?.();
      if (opts.replay) {
        if (opts.replay !== 'all' && !/^\d+$/.test(opts.replay)) {
          process.stderr.write(`--replay takes "all" or the sequence number of a dead letter, not "${opts.replay}"\n`);
          process.exitCode = 2;
          return;
        }
        const filter = { sink: opts.sink, code: opts.code, subject: opts.subject };
        const n = await inbox.replayDead(opts.replay === 'all' ? { ...filter, all: true } : { ...filter, inboxSeq: Number(opts.replay) });
        process.stdout.write(`${n} dead letter(s) queued for redelivery\n`);
        return;
      }
      if (opts.show) {
        const rows = await inbox.listDeliveries({ status: 'dead', inboxSeq: Number(opts.show), sink: opts.sink, limit: 10 });
        const full = await Promise.all(rows.map((r) => inbox.getDelivery(r.sink, r.inboxSeq)));
        process.stdout.write(`${JSON.stringify(full, null, 2)}\n`);
        return;
      }
      const rows = await inbox.listDeliveries({ status: 'dead', sink: opts.sink, code: opts.code, subject: opts.subject, limit: 1000 });
      if (opts.json) return void process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      if (rows.length === 0) return void process.stdout.write('no dead letters\n');
      for (const r of rows) {
        process.stdout.write(`${r.inboxSeq}\t${r.sink}\t${r.subject}\t${r.id}\tattempts=${r.attempts}\t${r.errorCode}: ${r.lastError}\n`);
      }
    } finally {
      await inbox.close();
    }
  });

program
  .command('demo')
  .description('Run a complete demo on loopback: simulated plant (OPC UA), agent, relay and a Salesforce-compatible CRM emulator.')
  .option('--work-orders <n>', 'work orders per line, then stop (exit 0 when everything landed; default: run until Ctrl-C)')
  .option('--dir <folder>', 'folder for the demo\'s configs, data and logs (default: a new temporary folder)')
  .action(async (opts: { workOrders?: string; dir?: string }) => {
    const { runDemo } = await import('../test/sim/demo.js');
    await runDemo({ ...(opts.workOrders ? { workOrdersPerLine: Number(opts.workOrders) } : {}), ...(opts.dir ? { dir: opts.dir } : {}) });
  });

program.parseAsync(process.argv).catch((e: unknown) => {
  process.stderr.write(`plantlink: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
