// The custom search attributes the workflows set (workflows/search-attributes.ts lists them) must
// exist on the namespace before a workflow starts. `npm start` registers missing ones through the
// operator service; where that is refused (Temporal Cloud, a server that needs admin rights) it
// stops with the exact commands to run, and a registered attribute of another type stops it too.
import type { Connection } from '@temporalio/client';
import type { SearchAttributeType } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { ALL_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';

const IndexedValueType = temporal.api.enums.v1.IndexedValueType;

/** The names the `temporal` CLI uses for each type (`--type Keyword`). */
const CLI_TYPE: Record<SearchAttributeType, string> = {
  TEXT: 'Text',
  KEYWORD: 'Keyword',
  INT: 'Int',
  DOUBLE: 'Double',
  BOOL: 'Bool',
  DATETIME: 'Datetime',
  KEYWORD_LIST: 'KeywordList',
};

const GRPC = { INVALID_ARGUMENT: 3, NOT_FOUND: 5, PERMISSION_DENIED: 7, UNIMPLEMENTED: 12, UNAUTHENTICATED: 16 } as const;
/** The answers of a server that does not let this caller manage search attributes. */
const REFUSED: number[] = [GRPC.PERMISSION_DENIED, GRPC.UNAUTHENTICATED, GRPC.UNIMPLEMENTED];

type Grpcish = { code?: unknown; details?: unknown; message?: unknown };
const grpcCode = (err: unknown) => (typeof (err as Grpcish)?.code === 'number' ? ((err as Grpcish).code as number) : undefined);
const grpcText = (err: unknown) => String((err as Grpcish)?.details || (err as Grpcish)?.message || err);
const codeName = (code: number) => Object.entries(GRPC).find(([, c]) => c === code)?.[0] ?? `code ${code}`;

function indexedType(type: SearchAttributeType): temporal.api.enums.v1.IndexedValueType {
  return IndexedValueType[`INDEXED_VALUE_TYPE_${type}`];
}

/** The CLI name of a type as the server reports it (`Text`), or its raw value when unknown. */
function cliTypeOf(indexed: number): string {
  const name = String(IndexedValueType[indexed] ?? '').replace(/^INDEXED_VALUE_TYPE_/, '');
  return CLI_TYPE[name as SearchAttributeType] ?? `type ${indexed}`;
}

/** A search attribute key as defineSearchAttributeKey makes it. */
export interface AttributeKey {
  name: string;
  type: SearchAttributeType;
}

export type SearchAttributesConnection = Pick<Connection, 'operatorService' | 'workflowService'>;

export interface EnsureSearchAttributesOptions {
  namespace: string;
  /** Where the server is, for messages (`host:port`). */
  address?: string;
  keys?: readonly AttributeKey[];
}

export interface SearchAttributesResult {
  namespace: string;
  /** Registered by this call. */
  registered: string[];
  /** Already there (with the right type, when `typesChecked`). */
  present: string[];
  /**
   * False when the operator service refused to list them and their presence was checked with
   * visibility queries instead, which cannot tell a type.
   */
  typesChecked: boolean;
}

/** Why the orchestrator cannot run on this namespace yet; `commands` fix what is missing. */
export class SearchAttributesError extends Error {
  constructor(
    message: string,
    readonly commands: string[] = [],
  ) {
    super(message);
    this.name = 'SearchAttributesError';
  }
}

/** The exact CLI commands that register these attributes on the namespace. */
export function createCommands(namespace: string, keys: readonly AttributeKey[]): string[] {
  return keys.map((k) => `temporal operator search-attribute create --namespace ${namespace} --name ${k.name} --type ${CLI_TYPE[k.type]}`);
}

function refusedMessage(what: string, err: unknown, opts: EnsureSearchAttributesOptions, missing: readonly AttributeKey[], checked: boolean): SearchAttributesError {
  const where = `Temporal${opts.address ? ` at ${opts.address}` : ''}`;
  const commands = createCommands(opts.namespace, missing);
  const lines = [
    `${where} refused to ${what} on namespace "${opts.namespace}" (${codeName(grpcCode(err)!)}: ${grpcText(err)}). Temporal Cloud does not allow it through the operator service; a self-hosted server allows it only to an admin.`,
    `${checked ? 'Missing' : 'Could not check which are registered; needed'}: ${missing.map((k) => `${k.name} (${CLI_TYPE[k.type]})`).join(', ')}. Register ${missing.length === 1 ? 'it' : 'them'} once, then start again:`,
    ...commands.map((c) => `  ${c}`),
    `(the temporal CLI reads the same TEMPORAL_ADDRESS / TEMPORAL_API_KEY / TEMPORAL_PROFILE settings from the environment${opts.address ? `, or add --address ${opts.address}` : ''})`,
  ];
  if (opts.address?.includes('.tmprl.cloud')) {
    lines.push('On Temporal Cloud, add them in the Cloud UI (Namespace → Search Attributes) or with tcld:');
    for (const k of missing) lines.push(`  tcld namespace search-attributes add --namespace ${opts.namespace} --search-attribute ${k.name}=${CLI_TYPE[k.type]}`);
  }
  return new SearchAttributesError(lines.join('\n'), commands);
}

function notFound(err: unknown, opts: EnsureSearchAttributesOptions): SearchAttributesError {
  return new SearchAttributesError(
    `Temporal${opts.address ? ` at ${opts.address}` : ''} has no namespace "${opts.namespace}" (${grpcText(err)}): create it (temporal operator namespace create --namespace ${opts.namespace}) or set TEMPORAL_NAMESPACE to an existing one`,
  );
}

async function listCustom(connection: SearchAttributesConnection, namespace: string): Promise<Record<string, number>> {
  const r = await connection.operatorService.listSearchAttributes({ namespace });
  return (r.customAttributes ?? {}) as Record<string, number>;
}

/**
 * Which of the keys a visibility query does not know, for a caller the operator service refuses:
 * `Name = ""` is an invalid query exactly when the namespace has no such attribute.
 */
async function missingByQuery(connection: SearchAttributesConnection, namespace: string, keys: readonly AttributeKey[]) {
  const missing: AttributeKey[] = [];
  for (const k of keys) {
    try {
      await connection.workflowService.countWorkflowExecutions({ namespace, query: `${k.name} = ""` });
    } catch (err) {
      if (grpcCode(err) === GRPC.INVALID_ARGUMENT && grpcText(err).includes(k.name) && /search attribute/i.test(grpcText(err))) missing.push(k);
      else throw err;
    }
  }
  return missing;
}

/**
 * Make sure every key is registered on the namespace with its type: register the missing ones
 * (idempotent: a second call changes nothing), or throw a SearchAttributesError that says what to
 * do — the CLI commands when the server refuses, the attribute's name when its type is wrong.
 */
export async function ensureSearchAttributes(connection: SearchAttributesConnection, opts: EnsureSearchAttributesOptions): Promise<SearchAttributesResult> {
  const keys = opts.keys ?? ALL_SEARCH_ATTRIBUTES;
  const { namespace } = opts;

  let existing: Record<string, number>;
  try {
    existing = await listCustom(connection, namespace);
  } catch (err) {
    const code = grpcCode(err);
    if (code === GRPC.NOT_FOUND) throw notFound(err, opts);
    if (code === undefined || !REFUSED.includes(code)) throw err;
    // Not allowed to list: a visibility query still tells whether each attribute exists.
    let missing: AttributeKey[];
    try {
      missing = await missingByQuery(connection, namespace, keys);
    } catch {
      throw refusedMessage('list search attributes', err, opts, keys, false);
    }
    if (missing.length) throw refusedMessage('list search attributes', err, opts, missing, true);
    return { namespace, registered: [], present: keys.map((k) => k.name), typesChecked: false };
  }

  const wrong = keys.filter((k) => k.name in existing && existing[k.name] !== indexedType(k.type));
  if (wrong.length) {
    const what = wrong.map((k) => `${k.name} is registered as ${cliTypeOf(existing[k.name])}, not ${CLI_TYPE[k.type]}`).join('; ');
    throw new SearchAttributesError(
      [
        `Search attribute${wrong.length > 1 ? 's' : ''} of the wrong type on Temporal namespace "${namespace}"${opts.address ? ` at ${opts.address}` : ''}: ${what}. The workflows set ${wrong.length > 1 ? 'them' : 'it'} as ${CLI_TYPE[wrong[0].type]}, and a registered type cannot be changed.`,
        `Use another namespace (TEMPORAL_NAMESPACE), or, if nothing else uses ${wrong.length > 1 ? 'them' : 'it'}, remove ${wrong.length > 1 ? 'them' : 'it'} and start again (npm start registers ${wrong.length > 1 ? 'them' : 'it'} with the right type):`,
        ...wrong.map((k) => `  temporal operator search-attribute remove --namespace ${namespace} --name ${k.name}`),
      ].join('\n'),
    );
  }

  const missing = keys.filter((k) => !(k.name in existing));
  const present = keys.filter((k) => k.name in existing).map((k) => k.name);
  if (!missing.length) return { namespace, registered: [], present, typesChecked: true };

  try {
    await connection.operatorService.addSearchAttributes({ namespace, searchAttributes: Object.fromEntries(missing.map((k) => [k.name, indexedType(k.type)])) });
  } catch (err) {
    const code = grpcCode(err);
    if (code !== undefined && REFUSED.includes(code)) throw refusedMessage('register search attributes', err, opts, missing, true);
    throw new SearchAttributesError(`registering ${missing.map((k) => k.name).join(', ')} on Temporal namespace "${namespace}" failed: ${grpcText(err)}`, createCommands(namespace, missing));
  }
  // Read back: they are there, with their types.
  const after = await listCustom(connection, namespace);
  const notThere = missing.filter((k) => after[k.name] !== indexedType(k.type));
  if (notThere.length) {
    throw new SearchAttributesError(`Temporal accepted ${notThere.map((k) => k.name).join(', ')} on namespace "${namespace}" but does not list ${notThere.length > 1 ? 'them' : 'it'} as registered`, createCommands(namespace, notThere));
  }
  return { namespace, registered: missing.map((k) => k.name), present, typesChecked: true };
}
