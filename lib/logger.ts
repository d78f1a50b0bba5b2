import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

/** Structured JSON logs; pretty in a terminal during dev. Secret-bearing keys are redacted as a safety net. */
export function createLogger(level: string, opts: { pretty?: boolean; name?: string } = {}): Logger {
  return pino({
    level,
    name: opts.name,
    redact: { paths: ['*.password', '*.secret', '*.token', '*.value', 'password', 'secret', 'token', 'authorization', 'req.headers.authorization'], censor: '[redacted]' },
    transport: opts.pretty ? { target: 'pino-pretty', options: { colorize: true, translateTime: 'HH:MM:ss', ignore: 'pid,hostname' } } : undefined,
  });
}
