// The local AWS endpoint: moto in server mode (installed by local-servers/install.js), with IAM
// authentication on, so a deleted or unknown access key is really refused. moto lets the first
// INITIAL_NO_AUTH_ACTION_COUNT requests through unsigned: exactly the ones that create the
// administrator whose key the connector then uses. Dev and tests only.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { AttachUserPolicyCommand, CreateAccessKeyCommand, CreatePolicyCommand, CreateUserCommand, IAMClient } from '@aws-sdk/client-iam';

export const LOCAL_AWS_REGION = 'us-east-1';
/** The bootstrap below: CreateUser, CreatePolicy, AttachUserPolicy, CreateAccessKey. */
const BOOTSTRAP_ACTIONS = 4;
export const LOCAL_AWS_ADMIN_USER = 'nhi-connector';

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface LocalAws {
  endpoint: string;
  region: string;
  /** The connector's own key (an administrator of the local account). */
  admin: AwsCredentials;
  stop(): Promise<void>;
}

export function motoServerPath(): string {
  const bin = path.join(__dirname, '.venv', process.platform === 'win32' ? 'Scripts' : 'bin', 'moto_server');
  if (!existsSync(bin)) throw new Error(`moto_server is not installed at ${bin}: run npm ci (local-servers/install.js)`);
  return bin;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForHttp(url: string, child: ChildProcess, what: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode}`);
    try {
      await fetch(url);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`${what} did not answer at ${url}`);
}

/** A local server never outlives this process, however it ends (a signal to this process alone, an exit mid-shutdown). */
export function dieWithParent(child: ChildProcess): void {
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', kill);
  child.once('exit', () => process.removeListener('exit', kill));
}

export function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/** Start moto on `port` (a free one by default) and create the connector's administrator. */
export async function startLocalAws(opts: { port?: number; onOutput?: (line: string) => void } = {}): Promise<LocalAws> {
  const port = opts.port ?? (await freePort());
  const child = spawn(motoServerPath(), ['-H', '127.0.0.1', '-p', String(port)], {
    env: { ...process.env, INITIAL_NO_AUTH_ACTION_COUNT: String(BOOTSTRAP_ACTIONS), MOTO_IAM_LOAD_MANAGED_POLICIES: 'false' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  dieWithParent(child);
  const forward = (b: Buffer) => opts.onOutput?.(b.toString().trimEnd());
  child.stdout!.on('data', forward);
  child.stderr!.on('data', forward);
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${endpoint}/moto-api/`, child, 'moto_server');
    const iam = new IAMClient({ endpoint, region: LOCAL_AWS_REGION, credentials: { accessKeyId: 'bootstrap', secretAccessKey: 'bootstrap' } });
    await iam.send(new CreateUserCommand({ UserName: LOCAL_AWS_ADMIN_USER }));
    const policy = await iam.send(
      new CreatePolicyCommand({
        PolicyName: 'nhi-connector-admin',
        PolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] }),
      }),
    );
    await iam.send(new AttachUserPolicyCommand({ UserName: LOCAL_AWS_ADMIN_USER, PolicyArn: policy.Policy!.Arn! }));
    const key = await iam.send(new CreateAccessKeyCommand({ UserName: LOCAL_AWS_ADMIN_USER }));
    iam.destroy();
    return {
      endpoint,
      region: LOCAL_AWS_REGION,
      admin: { accessKeyId: key.AccessKey!.AccessKeyId!, secretAccessKey: key.AccessKey!.SecretAccessKey! },
      stop: () => stopChild(child),
    };
  } catch (err) {
    await stopChild(child);
    throw err;
  }
}
