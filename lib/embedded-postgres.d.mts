export interface EmbeddedPostgresHandle {
  url: string;
  stop(): Promise<void>;
}
export function startEmbeddedPostgres(opts: {
  dataDir: string;
  port: number;
  password?: string;
  onLog?: (message: unknown) => void;
  persistent?: boolean;
}): Promise<EmbeddedPostgresHandle>;
