// `nhi`: the operator's command line. It reads the same configuration as the server (loadConfig,
// DATABASE_URL or the embedded dev database). Commands come in groups registered from the
// `commandGroups` list; a later command is one more (program, ctx) => void function.
// stdout carries only the result (a token, a table, JSON) so it can be piped; messages go to stderr.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { Pool } from 'pg';
import { ConfigError, loadConfig, type Config } from '../lib/config';
import { orchestratorDatabaseUrl, redactUrl } from '../lib/config-urls';
import { createPool } from '../lib/db';
import { closeChangeWindow } from '../scenarios/jit/change-windows';
import { connectClient } from '../lib/temporal-connection';
import type { Client } from '@temporalio/client';
import { createToken, DEFAULT_TOKEN_TTL_SECONDS, listPrincipals, listTokens, parseRoles, parseTtl, principalIdSchema, revokeToken, upsertPrincipal } from '../lib/principals';

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

/** Lazily created resources, so `nhi --help` touches no database and every command shares one pool. */
export interface CliContext extends CliIo {
  config(): Config;
  pool(): Pool;
  /** A Temporal client on the configured connection (envconfig), created on first use. */
  temporal(): Promise<Client>;
  /** Release whatever was created (called once after the command). */
  close(): Promise<void>;
}

/** A user-facing failure: printed as "error: <message>" without a stack trace. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'CliError';
  }
}

export type CommandGroup = (program: Command, ctx: CliContext) => void;

export function createContext(env: NodeJS.ProcessEnv = process.env, io: CliIo = defaultIo): CliContext {
  let config: Config | undefined;
  let pool: Pool | undefined;
  let temporal: Promise<{ client: Client; connection: { close(): Promise<void> } }> | undefined;
  return {
    ...io,
    config() {
      config ??= loadConfig(env);
      return config;
    },
    pool() {
      pool ??= createPool(orchestratorDatabaseUrl(this.config()), { max: 2, connectionTimeoutMillis: 10_000 });
      return pool;
    },
    async temporal() {
      temporal ??= connectClient(this.config());
      return (await temporal).client;
    },
    async close() {
      await pool?.end().catch(() => undefined);
      if (temporal) await (await temporal.catch(() => undefined))?.connection.close().catch(() => undefined);
    },
  };
}

const defaultIo: CliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

const rolesOption = (value: string) => {
  try {
    return parseRoles(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

const principalOption = (value: string) => {
  if (!principalIdSchema.safeParse(value).success) {
    throw new InvalidArgumentError('must be 1-128 characters: letters, digits, _ . @ -, starting with a letter or digit');
  }
  return value;
};

const ttlOption = (value: string): number => {
  try {
    return parseTtl(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

export const tokenCommands: CommandGroup = (program, ctx) => {
  const token = program.command('token').description('API tokens');

  token
    .command('create')
    .description('create (or update) a principal with these roles and print a new API token for it — only the token, on stdout')
    .requiredOption('--principal <id>', 'principal id, e.g. alice or deploy-bot', principalOption)
    .requiredOption('--roles <r1,r2>', 'comma-separated roles: requester, approver, deployer, detector, admin', rolesOption)
    .option('--label <text>', 'a note stored with the token (where it is used)')
    .option('--ttl <duration>', 'how long the token is valid: e.g. 90d, 12h, 30m (1 minute to 730 days)', ttlOption, DEFAULT_TOKEN_TTL_SECONDS)
    .action(async (opts: { principal: string; roles: ReturnType<typeof parseRoles>; label?: string; ttl: number }) => {
      const pool = ctx.pool();
      const principal = await upsertPrincipal(pool, { id: opts.principal, roles: opts.roles });
      const secret = await createToken(pool, principal.id, opts.label, { ttlSeconds: opts.ttl });
      ctx.out(secret);
      if (process.stderr.isTTY) ctx.err(`token for ${principal.id} (roles: ${principal.roles.join(', ')}), valid for ${Math.round(opts.ttl / 3600)} hour(s); it is shown only once`);
    });

  token
    .command('list')
    .description('list tokens (ids and metadata, never the tokens)')
    .option('--principal <id>', 'only this principal\'s tokens', principalOption)
    .option('--json', 'print JSON')
    .action(async (opts: { principal?: string; json?: boolean }) => {
      const tokens = await listTokens(ctx.pool(), opts.principal);
      if (opts.json) return ctx.out(JSON.stringify(tokens, null, 2));
      printTable(ctx, ['ID', 'PRINCIPAL', 'LABEL', 'CREATED', 'LAST USED', 'REVOKED', 'EXPIRES'], tokens.map((t) => [t.id, t.principalId, t.label ?? '', t.createdAt, t.lastUsedAt ?? '', t.revokedAt ?? '', t.expiresAt]));
    });

  token
    .command('revoke')
    .description('revoke a token, named by its id (see `nhi token list`) or by the token itself')
    .argument('<id-or-token>')
    .action(async (idOrToken: string) => {
      const revoked = await revokeToken(ctx.pool(), idOrToken);
      if (!revoked) throw new CliError('no active token matches (unknown, or already revoked)');
      ctx.err('revoked');
    });
};

export const principalCommands: CommandGroup = (program, ctx) => {
  const principals = program.command('principals').description('API principals (people and tools) and their roles');
  principals
    .command('list')
    .description('list principals with their roles and active token counts')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const list = await listPrincipals(ctx.pool());
      if (opts.json) return ctx.out(JSON.stringify(list, null, 2));
      printTable(ctx, ['PRINCIPAL', 'ROLES', 'TOKENS', 'LAST USED'], list.map((p) => [p.id, p.roles.join(','), String(p.activeTokens), p.lastUsedAt ?? '']));
    });
};

export const changeWindowCommands: CommandGroup = (program, ctx) => {
  program
    .command('close-window')
    .description('close a change window: signal closeWindow to every running elevation with this ChangeId; prints how many were reached')
    .argument('<changeId>')
    .option('--reason <text>', 'why (shown in the elevation\'s timeline)', 'change window closed')
    .option('--by <who>', 'who closes it (recorded)', process.env.USER ? `cli:${process.env.USER}` : 'cli')
    .option('--json', 'print JSON')
    .action(async (changeId: string, opts: { reason: string; by: string; json?: boolean }) => {
      if (!/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/.test(changeId)) throw new CliError('a change id is letters, digits, . _ : - (at most 64)');
      const reached = await closeChangeWindow(await ctx.temporal(), changeId, { reason: opts.reason, by: opts.by });
      if (opts.json) return ctx.out(JSON.stringify({ changeId, reached: reached.length, workflowIds: reached }));
      ctx.out(String(reached.length));
      for (const id of reached) ctx.err(`closed ${id}`);
    });
};

/** Every command group, in help order. */
export const commandGroups: CommandGroup[] = [tokenCommands, principalCommands, changeWindowCommands];

function printTable(ctx: CliIo, header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  ctx.out(line(header));
  for (const r of rows) ctx.out(line(r));
}

export function buildProgram(ctx: CliContext, groups: CommandGroup[] = commandGroups): Command {
  const program = new Command('nhi')
    .description('NHI orchestrator command line (uses the same environment as the server: DATABASE_URL, TEMPORAL_*, …)')
    .addOption(new Option('--debug', 'print stack traces on failure').hideHelp())
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    .configureOutput({ writeOut: (s) => process.stdout.write(s), writeErr: (s) => process.stderr.write(s) });
  // Subcommands copy exitOverride and the output settings when they are created, i.e. here.
  for (const register of groups) register(program, ctx);
  return program;
}

/** Explain the failures an operator can act on; anything else is reported briefly. */
export function describeError(err: unknown, ctx: CliContext): string {
  if (err instanceof CliError || err instanceof ConfigError) return err.message;
  const e = err as { code?: string; message?: string; name?: string };
  const where = () => {
    try {
      return redactUrl(orchestratorDatabaseUrl(ctx.config()));
    } catch {
      return 'the configured database';
    }
  };
  if (e?.code === 'ECONNREFUSED' || e?.code === 'ENOTFOUND' || e?.code === 'ETIMEDOUT' || /timeout exceeded when trying to connect/.test(e?.message ?? '')) {
    return `cannot reach PostgreSQL at ${where()} — is the orchestrator's database running (npm start), or is DATABASE_URL right?`;
  }
  if (e?.code === '28P01' || e?.code === '28000') return `PostgreSQL refused the login at ${where()}: check DATABASE_URL's user and password`;
  if (e?.code === '3D000') return `the database in ${where()} does not exist: start the orchestrator once (npm start) or fix DATABASE_URL`;
  if (e?.code === '42P01') return `the database at ${where()} has no orchestrator tables yet: start the orchestrator once (npm start) to migrate it`;
  return e?.message ?? String(err);
}

/** Run the CLI; resolves to the exit code (never calls process.exit, so output is flushed). */
export async function main(argv: string[] = process.argv, ctx: CliContext = createContext()): Promise<number> {
  const program = buildProgram(ctx);
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander has printed the message (or the help/version) already.
      return err.exitCode;
    }
    ctx.err(`error: ${describeError(err, ctx)}`);
    if (program.opts().debug && err instanceof Error && err.stack) ctx.err(err.stack);
    return err instanceof CliError ? err.exitCode : 1;
  } finally {
    await ctx.close();
  }
}

if (require.main === module) {
  main().then((code) => {
    process.exitCode = code;
  });
}
