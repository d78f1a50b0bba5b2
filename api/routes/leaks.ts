// Leak containment API and webhooks (issue #4).
import { Router } from 'express';
import type { ScenarioDeps } from '../scenarios';

export function createLeakRouter(_deps: ScenarioDeps): Router {
  return Router();
}
