// A node:test reporter for scripts/test.mjs: one JSON line per finished test (passed, failed or not run, with
// the reason it was not run, or with what failed), so the run's summary can name every test that did not run and
// every failure with its message.
export default async function* events(source) {
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { name, nesting, skip, todo, details } = event.data;
    const error = details?.error;
    yield `${JSON.stringify({
      passed: event.type === 'test:pass',
      name,
      nesting,
      skip: skip === undefined ? undefined : String(skip),
      todo: todo === undefined ? undefined : String(todo),
      suite: details?.type === 'suite',
      error: error === undefined ? undefined : String(error.cause?.message ?? error.message),
    })}\n`;
  }
}
