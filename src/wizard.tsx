export async function runWizard(_opts: { answersFile?: string }): Promise<number> {
  process.stderr.write('qemu-harden: the interview is not available yet; use qemu-harden generate\n');
  return 2;
}
