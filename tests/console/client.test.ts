// The console's typed client is generated from the API's OpenAPI document: the committed file must
// be exactly what the generator makes of today's document, so a route change without
// `npm run console:client` fails here.
import { readFileSync } from 'node:fs';
import { CLIENT_FILE, generateClientSource, openApiDocument, operationName, typeOf } from '../../scripts/console-client';

test('console/api-client.ts is current with /openapi.json', async () => {
  const doc = await openApiDocument();
  const generated = generateClientSource(doc);
  expect(readFileSync(CLIENT_FILE, 'utf8')).toBe(generated);
  // Every /v1 operation has its method, named from the path.
  for (const [p, methods] of Object.entries(doc.paths)) {
    if (!p.startsWith('/v1/')) continue;
    for (const m of Object.keys(methods)) expect(generated).toContain(`  ${operationName(m, p)}(`);
  }
  expect(generated).toContain('getNhisByIdAccess(id: string): Promise<Answer<AccessReadback>>');
});

test('names and types', () => {
  expect(operationName('post', '/v1/elevations/{id}/approve')).toBe('postElevationsByIdApprove');
  expect(operationName('post', '/v1/change-windows/{changeId}/close')).toBe('postChangeWindowsByChangeIdClose');
  expect(typeOf({ type: 'string', nullable: true })).toBe('string | null');
  expect(typeOf({ enum: ['a', 'b'] })).toBe('"a" | "b"');
  expect(typeOf({ type: 'array', items: { $ref: '#/components/schemas/Issue' } })).toBe('Array<Issue>');
  expect(typeOf({ type: 'object', properties: { id: { type: 'string' }, n: { type: 'integer' } }, required: ['id'] })).toBe('{\n  id: string;\n  n?: number;\n}');
});
