// Errors a user can fix (bad flag, missing file, unsupported model): shown as one line, exit 2.
export class UserError extends Error {
  override name = "UserError";
}

/** Native errors about a file ("<path>: not a GGUF file …") are user errors too. */
export function isUserFacing(e: unknown): e is Error {
  return e instanceof UserError || (e instanceof Error && !(e instanceof TypeError) && !(e instanceof ReferenceError));
}
