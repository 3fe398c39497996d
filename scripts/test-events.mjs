// A node:test reporter for scripts/test.mjs: one JSON line per finished test (passed, failed or not run, with
// the reason it was not run), so the run's summary can name every test that did not run and every failure.
export default async function* events(source) {
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { name, nesting, skip, todo, details } = event.data;
    yield `${JSON.stringify({
      passed: event.type === 'test:pass',
      name,
      nesting,
      skip: skip === undefined ? undefined : String(skip),
      todo: todo === undefined ? undefined : String(todo),
      suite: details?.type === 'suite',
    })}\n`;
  }
}
