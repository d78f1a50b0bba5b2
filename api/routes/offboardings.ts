// Offboarding API (issue #5).
import { Router } from 'express';
import type { ScenarioDeps } from '../scenarios';

export function createOffboardingRouter(_deps: ScenarioDeps): Router {
  return Router();
}
