// Errors the command line reports as "qemu-harden: <message>" with exit status 2: bad input, never a bug.
// Kept apart from the answers model so that a command can catch them without loading the model.

export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}
