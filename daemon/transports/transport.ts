// What every transport is to the daemon (DESIGN §9): something that starts listening, stops taking
// new clients when the daemon begins to stop, and closes once the answers in flight are written.
export interface Transport {
  /** Listens; a mistake the user can fix (a taken port, a bad path) is a UserError. */
  start(): Promise<void> | void;
  /** No new clients from now on; those already connected are still answered. */
  stopListening(): Promise<void> | void;
  /** Ends every connection once its answers are written (at most waitMs for a client that stops reading). */
  close(waitMs?: number): Promise<void>;
}
