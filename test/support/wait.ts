/** Polls (every `intervalMs`) until `condition` holds, for at most `ms`; returns whether it held. Nothing is timed beyond the deadline. */
export async function within(ms: number, condition: () => boolean | Promise<boolean>, intervalMs = 10): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await condition()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
