// Workflow payloads encrypted at rest in Temporal: AES-256-GCM over the whole serialized payload
// (metadata and data), with the key id in the encrypted payload's metadata so keys can be rotated —
// new payloads use the current key, older ones decode with the key they name. The one place clients
// and workers get their data converter (dataConverterFor). Off when no key is configured.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { Config } from './config';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
export const DEV_PAYLOAD_KEYS_FILE = 'payload-codec.keys';

const utf8 = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | null | undefined) => (b ? Buffer.from(b).toString('utf8') : undefined);

export interface PayloadKeys {
  current: string;
  keys: Map<string, Buffer>;
}

/** "id:key,id:key" (key: 32 bytes base64 or 64 hex); the first is the current key, the rest decode older payloads. */
export function parsePayloadKeys(spec: string): PayloadKeys {
  const keys = new Map<string, Buffer>();
  let current: string | undefined;
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([A-Za-z0-9_.-]{1,64}):(.+)$/.exec(part);
    const key = m ? (/^[0-9a-fA-F]{64}$/.test(m[2]) ? Buffer.from(m[2], 'hex') : Buffer.from(m[2], 'base64')) : undefined;
    if (!m || key?.length !== 32) throw new Error('each key must be id:key with a 32-byte key (base64 or 64 hex characters), e.g. k2:…,k1:…');
    if (keys.has(m[1])) throw new Error(`key id ${m[1]} appears twice`);
    keys.set(m[1], key);
    current ??= m[1];
  }
  if (!current) throw new Error('no key given');
  return { current, keys };
}

export class AesGcmPayloadCodec implements PayloadCodec {
  constructor(private readonly k: PayloadKeys) {}

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', this.k.keys.get(this.k.current)!, iv);
      cipher.setAAD(Buffer.from(this.k.current)); // the key id cannot be swapped without detection
      const plain = temporal.api.common.v1.Payload.encode(p).finish();
      const sealed = Buffer.concat([cipher.update(plain), cipher.final()]);
      return {
        metadata: { encoding: utf8(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: utf8(this.k.current) },
        data: Buffer.concat([iv, sealed, cipher.getAuthTag()]),
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      if (text(p.metadata?.encoding) !== ENCRYPTED_ENCODING) return p;
      const id = text(p.metadata?.[KEY_ID_METADATA]) ?? '';
      const key = this.k.keys.get(id);
      if (!key) throw new Error(`payload encrypted with key ${JSON.stringify(id)}, which is not configured (PAYLOAD_KEYS)`);
      const data = Buffer.from(p.data ?? new Uint8Array());
      if (data.length < 28) throw new Error('encrypted payload too short');
      const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, 12));
      decipher.setAAD(Buffer.from(id));
      decipher.setAuthTag(data.subarray(data.length - 16));
      const plain = Buffer.concat([decipher.update(data.subarray(12, data.length - 16)), decipher.final()]);
      return temporal.api.common.v1.Payload.decode(plain) as Payload;
    });
  }
}

/**
 * The keys from PAYLOAD_KEYS, else (development only) the key file in the data folder — generated
 * only with `create` (npm start), so a CLI run elsewhere never leaves one behind; null when off.
 */
export function payloadKeysFrom(config: Pick<Config, 'PAYLOAD_ENCRYPTION' | 'PAYLOAD_KEYS' | 'NODE_ENV' | 'dataDir'>, opts: { create?: boolean } = {}): PayloadKeys | null {
  if (config.PAYLOAD_ENCRYPTION === 'off') return null;
  if (config.PAYLOAD_KEYS) return parsePayloadKeys(config.PAYLOAD_KEYS);
  if (config.NODE_ENV !== 'development') return null;
  const file = path.join(config.dataDir, DEV_PAYLOAD_KEYS_FILE);
  if (!existsSync(file)) {
    if (!opts.create) return null;
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    writeFileSync(file, `dev1:${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  }
  return parsePayloadKeys(readFileSync(file, 'utf8').trim());
}

/** What every client and worker of this process uses (the default converter when encryption is off). */
export function dataConverterFor(config: Parameters<typeof payloadKeysFrom>[0]): DataConverter {
  const keys = payloadKeysFrom(config);
  return keys ? { payloadCodecs: [new AesGcmPayloadCodec(keys)] } : {};
}

/** The Temporal UI origins the codec server answers CORS for: TEMPORAL_UI_ORIGINS, else the local dev UI. */
export function uiOrigins(config: Pick<Config, 'TEMPORAL_UI_ORIGINS' | 'TEMPORAL_UI_PORT'>, devUiUrl?: string): string[] {
  if (config.TEMPORAL_UI_ORIGINS) return config.TEMPORAL_UI_ORIGINS.split(',').map((s) => s.trim()).filter(Boolean);
  const local = [`http://127.0.0.1:${config.TEMPORAL_UI_PORT}`, `http://localhost:${config.TEMPORAL_UI_PORT}`];
  return devUiUrl ? [...new Set([new URL(devUiUrl).origin, ...local])] : local;
}
