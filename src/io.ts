// The terminal a command talks to: where its output and errors go, and how it asks a yes/no question. The CLI
// passes the process's own; tests pass theirs.
export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  isTTY: boolean;
  /** Asks and answers yes or no; absent where nobody can answer (then --yes is needed). The question goes to
   * stdout, or to stderr when stdout carries a document (--json). */
  confirm?: (question: string, on?: 'stdout' | 'stderr') => Promise<boolean>;
  isRoot?: boolean;
}
