// A conversation too long for the context loses its oldest turns, as Ollama does: the system
// messages stay, and so does the latest turn. Home Assistant resends a conversation's history with
// each request, so on a 2048-token context its third or fourth turn would not fit otherwise.
import type { ChatMessage } from "./protocol.js";

/**
 * The conversation without its oldest turn (a user message and everything up to the next one),
 * or null when only the system messages and one turn are left.
 */
export function withoutOldestTurn(messages: readonly ChatMessage[]): ChatMessage[] | null {
  let start = 0;
  while (start < messages.length && messages[start].role === "system") start++;
  const users = messages.map((m, i) => (i >= start && m.role === "user" ? i : -1)).filter((i) => i >= 0);
  if (users.length < 2) return null;
  return [...messages.slice(0, start), ...messages.slice(users[1])];
}
