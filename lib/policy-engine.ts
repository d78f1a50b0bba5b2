// The policy engine: Cedar policies kept as files, validated against their schema when loaded,
// pre-parsed once, then evaluated per request with the stateful API (tens of µs per decision).
// Generic: it knows nothing of NHIs. Domain helpers that build requests: policy-decisions.ts and each scenario's policy.ts.
// First: Cedar is Wasm, and Node 20/22 crash on one way of optimising calls into it (see the module).
import './v8-wasm-workaround';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  checkParseSchema,
  policySetTextToParts,
  policyToJson,
  preparsePolicySet,
  preparseSchema,
  schemaToJson,
  statefulIsAuthorized,
  validate,
} from '@cedar-policy/cedar-wasm/nodejs';
import type {
  CedarValueJson,
  DetailedError,
  EntityJson,
  EntityUidJson,
  PolicyJson,
  StatefulAuthorizationCall,
} from '@cedar-policy/cedar-wasm/nodejs';

export type { CedarValueJson, EntityJson };

export const SCHEMA_FILE = 'schema.cedarschema';
export const POLICY_EXTENSION = '.cedar';

/** An entity reference: `{ type: 'Nhi::Nhi', id: 'svc_payments' }`. */
export interface EntityUid {
  type: string;
  id: string;
}

export interface DecisionRequest {
  principal: EntityUid;
  /** e.g. `{ type: 'Nhi::Action', id: 'RequestElevation' }` */
  action: EntityUid;
  resource: EntityUid;
  context?: Record<string, CedarValueJson>;
  /** Every entity the policies may read (principal, resource, entities referenced in the context). */
  entities?: EntityJson[];
}

export interface Decision {
  decision: 'allow' | 'deny';
  /**
   * The policies that determined the decision: the satisfied permits of an allow, the satisfied
   * forbids of a deny (empty when nothing permitted: Cedar's default deny). When evaluation
   * errors forced a deny (see `errors`), the policies that failed to evaluate.
   */
  determiningPolicies: string[];
  /**
   * Evaluation errors. Cedar skips a policy that fails to evaluate, which could let a request
   * through a forbid it should have met; this engine fails closed instead: any error → deny.
   */
  errors: string[];
  policySetHash: string;
}

export interface LoadedPolicy {
  /** The `@id("…")` annotation, or `<file>#<n>` (n counts from 0 in file order). */
  id: string;
  file: string;
  /** 1-based line of the policy's first character (its first annotation) in its file. */
  line: number;
  effect: 'permit' | 'forbid';
  /** Annotation values by name (`@reason("…")` → `{ reason: '…' }`; a bare `@flag` → `''`). */
  annotations: Readonly<Record<string, string>>;
  /** The action ids (`Nhi::Action::"Offboard"`) the policy's scope names, or 'any'. */
  actions: readonly string[] | 'any';
  text: string;
}

export interface PolicyProblem {
  file: string;
  policyId?: string;
  line?: number;
  column?: number;
  message: string;
}

/** The policy folder cannot be used: a missing file, a parse error, or a validation failure. */
export class PolicyLoadError extends Error {
  override readonly name = 'PolicyLoadError';
  constructor(
    readonly source: string,
    readonly problems: PolicyProblem[],
  ) {
    super(
      `Invalid Cedar policies in ${source}:\n` + problems.map((p) => `  - ${formatProblem(p)}`).join('\n'),
    );
  }
}

export interface PolicyEngineOptions {
  /**
   * Validate every request (principal, action, resource, context and entities) against the
   * schema. Costs about a third more per decision; tests turn it on to prove that the domain
   * helpers build well-formed requests. Default false.
   */
  validateRequests?: boolean;
}

export interface PolicySources {
  /** Where the sources came from, for messages (a folder path). */
  source: string;
  schema: string;
  /** Policy files: name (e.g. `jit.cedar`) and text. */
  files: { name: string; text: string }[];
}

function formatProblem(p: PolicyProblem): string {
  const where = p.line !== undefined ? `${p.file}:${p.line}:${p.column ?? 1}` : p.file;
  return p.policyId ? `${where} (policy ${p.policyId}): ${p.message}` : `${where}: ${p.message}`;
}

function describe(e: DetailedError): string {
  const label = e.sourceLocations?.find((l) => l.label)?.label;
  return [e.message, label, e.help].filter(Boolean).join(' — ');
}

/** 1-based line and column of a byte offset (Cedar reports byte offsets) in `text`, starting at `fromChar`. */
function locate(text: string, fromChar: number, byteOffset: number): { line: number; column: number } {
  const tail = Buffer.from(text.slice(fromChar), 'utf8').subarray(0, byteOffset).toString('utf8');
  const before = text.slice(0, fromChar) + tail;
  const lines = before.split('\n');
  return { line: lines.length, column: lines[lines.length - 1].length + 1 };
}

function uidOf(e: EntityUidJson): EntityUid {
  return '__entity' in e ? e.__entity : e;
}

function actionKey(type: string, id: string): string {
  return `${type}::${JSON.stringify(id)}`;
}

function scopeActions(json: PolicyJson): string[] | 'any' {
  const a = json.action;
  if (a.op === 'All') return 'any';
  const list = 'entities' in a ? a.entities : 'entity' in a ? [a.entity] : [];
  return list.map(uidOf).map((u) => actionKey(u.type, u.id));
}

export class PolicyEngine {
  /** sha256 (hex) over the schema and every policy file, names included: which rules were in force. */
  readonly policySetHash: string;
  /** Validator warnings (not fatal), formatted like load errors. */
  readonly warnings: readonly string[];
  readonly source: string;

  private readonly byId: Map<string, LoadedPolicy>;
  /** Load order, to report determining policies in file order (Cedar's order is not stable). */
  private readonly ordinal: Map<string, number>;
  /** Pre-parsed policy set per action (only the policies whose scope can match it). */
  private readonly partitions: Map<string, string>;
  private readonly fullSetId: string;
  private readonly schemaId: string | undefined;
  private readonly validateRequests: boolean;

  private constructor(init: {
    source: string;
    hash: string;
    policies: LoadedPolicy[];
    warnings: string[];
    partitions: Map<string, string>;
    fullSetId: string;
    schemaId: string | undefined;
    validateRequests: boolean;
  }) {
    this.source = init.source;
    this.policySetHash = init.hash;
    this.byId = new Map(init.policies.map((p) => [p.id, p]));
    this.ordinal = new Map(init.policies.map((p, i) => [p.id, i]));
    this.warnings = init.warnings;
    this.partitions = init.partitions;
    this.fullSetId = init.fullSetId;
    this.schemaId = init.schemaId;
    this.validateRequests = init.validateRequests;
  }

  /** Reads `dir/schema.cedarschema` and every `dir/*.cedar`; throws PolicyLoadError when unusable. */
  static load(dir: string, options: PolicyEngineOptions = {}): PolicyEngine {
    const schemaPath = path.join(dir, SCHEMA_FILE);
    let schema: string;
    let names: string[];
    try {
      names = readdirSync(dir).filter((n) => n.endsWith(POLICY_EXTENSION));
    } catch (err) {
      throw new PolicyLoadError(dir, [{ file: dir, message: `cannot read the policy folder: ${(err as Error).message}` }]);
    }
    try {
      schema = readFileSync(schemaPath, 'utf8');
    } catch {
      throw new PolicyLoadError(dir, [{ file: SCHEMA_FILE, message: `missing: every policy folder needs ${SCHEMA_FILE}` }]);
    }
    const files = names.map((name) => ({ name, text: readFileSync(path.join(dir, name), 'utf8') }));
    return PolicyEngine.fromSources({ source: dir, schema, files }, options);
  }

  static fromSources(sources: PolicySources, options: PolicyEngineOptions = {}): PolicyEngine {
    const { source, schema } = sources;
    const files = [...sources.files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const fail = (problems: PolicyProblem[]): never => {
      throw new PolicyLoadError(source, problems);
    };
    const schemaProblems = (errors: DetailedError[]): PolicyProblem[] =>
      errors.map((e) => {
        const loc = e.sourceLocations?.[0];
        return { file: SCHEMA_FILE, ...(loc ? locate(schema, 0, loc.start) : {}), message: describe(e) };
      });

    // 1. The schema parses.
    const schemaParse = checkParseSchema(schema);
    if (schemaParse.type === 'failure') fail(schemaProblems(schemaParse.errors));
    if (files.length === 0) fail([{ file: source, message: `no *${POLICY_EXTENSION} policy files` }]);

    // 2. Each file parses; its policies get stable ids.
    const policies: LoadedPolicy[] = [];
    const problems: PolicyProblem[] = [];
    const seen = new Map<string, LoadedPolicy>();
    const origin = new Map<string, { fileText: string; at: number }>();
    for (const { name, text } of files) {
      const parts = policySetTextToParts(text);
      if (parts.type === 'failure') {
        for (const e of parts.errors) {
          const loc = e.sourceLocations?.[0];
          problems.push({ file: name, ...(loc ? locate(text, 0, loc.start) : {}), message: describe(e) });
        }
        continue;
      }
      for (const t of parts.policy_templates) {
        problems.push({
          file: name,
          ...locate(text, Math.max(text.indexOf(t), 0), 0),
          message: 'templates (policies with ?principal or ?resource slots) are not supported',
        });
      }
      // policySetTextToParts sorts by its own ids (policy0, policy1, policy10, …): restore file order.
      const claimed = new Set<number>();
      const located = parts.policies.map((p) => {
        let at = text.indexOf(p);
        while (at >= 0 && claimed.has(at)) at = text.indexOf(p, at + 1);
        claimed.add(at);
        return { text: p, at };
      });
      located.sort((a, b) => a.at - b.at);
      located.forEach(({ text: policyText, at }, index) => {
        const json = policyToJson(policyText);
        if (json.type === 'failure') {
          problems.push({ file: name, ...locate(text, Math.max(at, 0), 0), message: json.errors.map(describe).join('; ') });
          return;
        }
        const annotations: Record<string, string> = {};
        for (const [k, v] of Object.entries(json.json.annotations ?? {})) annotations[k] = v ?? '';
        const id = annotations.id || `${name}#${index}`;
        const { line } = locate(text, Math.max(at, 0), 0);
        const policy: LoadedPolicy = {
          id,
          file: name,
          line,
          effect: json.json.effect,
          annotations: Object.freeze(annotations),
          actions: scopeActions(json.json),
          text: policyText,
        };
        const clash = seen.get(id);
        if (clash) {
          problems.push({ file: name, line, policyId: id, message: `duplicate policy id (also ${clash.file}:${clash.line})` });
          return;
        }
        seen.set(id, policy);
        origin.set(id, { fileText: text, at: Math.max(at, 0) });
        policies.push(policy);
      });
    }
    if (problems.length) fail(problems);

    // 3. The policies validate against the schema (strict mode).
    const record: Record<string, string> = {};
    for (const p of policies) record[p.id] = p.text;
    const validation = validate({ schema, policies: { staticPolicies: record }, validationSettings: { mode: 'strict' } });
    if (validation.type === 'failure') fail(schemaProblems(validation.errors));
    const where = (policyId: string, byteOffset: number | undefined): PolicyProblem => {
      const p = seen.get(policyId);
      const o = origin.get(policyId);
      if (!p || !o) return { file: source, policyId, message: '' };
      return { file: p.file, policyId, ...locate(o.fileText, o.at, byteOffset ?? 0), message: '' };
    };
    const asProblem = (v: { policyId: string; error: DetailedError }): PolicyProblem => ({
      ...where(v.policyId, v.error.sourceLocations?.[0]?.start),
      message: describe(v.error),
    });
    if (validation.type === 'success' && validation.validationErrors.length) {
      fail(validation.validationErrors.map(asProblem));
    }
    const warnings =
      validation.type === 'success'
        ? [
            ...validation.validationWarnings.map((w) => formatProblem(asProblem(w))),
            ...validation.otherWarnings.map((w) => `${SCHEMA_FILE}: ${describe(w)}`),
          ]
        : [];

    // 4. Hash what is in force.
    const h = createHash('sha256');
    for (const { name, text } of [{ name: SCHEMA_FILE, text: schema }, ...files]) {
      h.update(`${name}\n${Buffer.byteLength(text)}\n`).update(text).update('\n');
    }
    const hash = h.digest('hex');

    // 5. Pre-parse: the whole set, and one set per action holding only the policies whose scope
    //    names that action (or any action). Same decisions, fewer policies evaluated. With action
    //    groups (memberOf) in the schema, `action in Group` needs the schema at evaluation time:
    //    then every decision uses the whole set and the schema.
    const schemaJson = schemaToJson(schema);
    const actions: string[] = [];
    let hasGroups = false;
    if (schemaJson.type === 'success') {
      for (const [ns, def] of Object.entries(schemaJson.json)) {
        for (const [id, a] of Object.entries(def.actions ?? {})) {
          actions.push(actionKey(ns ? `${ns}::Action` : 'Action', id));
          if (a.memberOf?.length) hasGroups = true;
        }
      }
    }
    const prefix = `nhi-policies:${hash}`;
    const preparse = (id: string, subset: LoadedPolicy[]) => {
      const r = preparsePolicySet(id, { staticPolicies: Object.fromEntries(subset.map((p) => [p.id, p.text])) });
      if (r.type === 'failure') fail(r.errors.map((e) => ({ file: source, message: describe(e) })));
    };
    const fullSetId = `${prefix}:*`;
    preparse(fullSetId, policies);
    const partitions = new Map<string, string>();
    if (!hasGroups) {
      for (const key of actions) {
        const id = `${prefix}:${key}`;
        preparse(id, policies.filter((p) => p.actions === 'any' || p.actions.includes(key)));
        partitions.set(key, id);
      }
    }
    const validateRequests = options.validateRequests ?? false;
    let schemaId: string | undefined;
    if (hasGroups || validateRequests) {
      schemaId = `${prefix}:schema`;
      const r = preparseSchema(schemaId, schema);
      if (r.type === 'failure') fail(schemaProblems(r.errors));
    }

    return new PolicyEngine({ source, hash, policies, warnings, partitions, fullSetId, schemaId, validateRequests });
  }

  /** Every loaded policy, in file order (files sorted by name). */
  get policies(): readonly LoadedPolicy[] {
    return [...this.byId.values()];
  }

  policy(id: string): LoadedPolicy | undefined {
    return this.byId.get(id);
  }

  /** A policy's annotations (`{}` for an unknown id). */
  annotations(id: string): Readonly<Record<string, string>> {
    return this.byId.get(id)?.annotations ?? {};
  }

  decide(req: DecisionRequest): Decision {
    const psetId = this.partitions.get(actionKey(req.action.type, req.action.id)) ?? this.fullSetId;
    const call: StatefulAuthorizationCall = {
      principal: req.principal,
      action: req.action,
      resource: req.resource,
      context: req.context ?? {},
      entities: req.entities ?? [],
      preparsedPolicySetId: psetId,
    };
    if (this.schemaId) {
      call.preparsedSchemaName = this.schemaId;
      call.validateRequest = this.validateRequests;
    }
    const answer = statefulIsAuthorized(call);
    if (answer.type === 'failure') {
      return { decision: 'deny', determiningPolicies: [], errors: answer.errors.map(describe), policySetHash: this.policySetHash };
    }
    const { decision, diagnostics } = answer.response;
    if (diagnostics.errors.length) {
      return {
        decision: 'deny',
        determiningPolicies: this.inFileOrder(new Set(diagnostics.errors.map((e) => e.policyId))),
        errors: diagnostics.errors.map((e) => `${e.policyId}: ${describe(e.error)}`),
        policySetHash: this.policySetHash,
      };
    }
    return { decision, determiningPolicies: this.inFileOrder(diagnostics.reason), errors: [], policySetHash: this.policySetHash };
  }

  private inFileOrder(ids: Iterable<string>): string[] {
    const list = [...ids];
    if (list.length > 1) list.sort((a, b) => (this.ordinal.get(a) ?? 0) - (this.ordinal.get(b) ?? 0));
    return list;
  }
}
