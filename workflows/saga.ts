// One saga helper for every scenario: register the undo before the step it undoes, run undos in
// reverse in a non-cancellable scope, rethrow the original failure.
import { CancellationScope, log } from '@temporalio/workflow';

export interface CompensationOutcome {
  name: string;
  ok: boolean;
  error?: string;
}

export class Saga {
  private readonly undos: { name: string; fn: () => Promise<unknown> }[] = [];

  /** Register the undo for the step about to run. Undos must be idempotent (the step may not have happened). */
  add(name: string, fn: () => Promise<unknown>): void {
    this.undos.push({ name, fn });
  }

  /** Forget every undo, e.g. once the steps' effects are meant to stay. */
  clear(): void {
    this.undos.length = 0;
  }

  get size(): number {
    return this.undos.length;
  }

  /** Run the undos in reverse order; a failing undo does not stop the others. */
  async compensate(): Promise<CompensationOutcome[]> {
    const outcomes: CompensationOutcome[] = [];
    await CancellationScope.nonCancellable(async () => {
      for (const { name, fn } of [...this.undos].reverse()) {
        try {
          await fn();
          outcomes.push({ name, ok: true });
        } catch (err) {
          log.error('compensation failed', { name, error: String(err) });
          outcomes.push({ name, ok: false, error: err instanceof Error ? err.message : String(err) });
        }
      }
    });
    this.undos.length = 0;
    return outcomes;
  }
}

/**
 * Run body with a saga; on failure, compensate and rethrow the original error (the compensation
 * outcomes are handed to onCompensated first, e.g. to record them in the workflow's state).
 */
export async function withSaga<T>(
  body: (saga: Saga) => Promise<T>,
  onCompensated?: (outcomes: CompensationOutcome[], cause: unknown) => void,
): Promise<T> {
  const saga = new Saga();
  try {
    return await body(saga);
  } catch (err) {
    const outcomes = await saga.compensate();
    onCompensated?.(outcomes, err);
    throw err;
  }
}
