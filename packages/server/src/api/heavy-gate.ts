import type { FastifyReply } from "fastify";
import type { Principal } from "../auth/principal.js";
import { resourceExhausted } from "../core/errors.js";

interface HeavyLimits {
  /** Heavy requests one token may have in flight. */
  perToken: number;
  /** Heavy requests one project may have in flight (all its tokens together). */
  perProject: number;
  /** Heavy requests the whole server takes at once (all projects together). */
  total: number;
}

/**
 * Caps the heavy requests (streams of stored output, event replays, image downloads, archives,
 * greps) that one token and one project may have in flight, so one tenant cannot take the
 * server's CPU, memory and sockets from the others: past the cap the answer is 429 with
 * Retry-After. A slot is held until the response is finished or its connection is gone.
 */
export class HeavyGate {
  private readonly byToken = new Map<string, number>();
  private readonly byProject = new Map<string, number>();
  private total = 0;

  constructor(private readonly limits: HeavyLimits) {}

  /** Takes a slot or throws resource_exhausted (429); the returned function releases it once. */
  enter(p: Principal): () => void {
    const t = this.byToken.get(p.token.id) ?? 0;
    const pr = this.byProject.get(p.project.id) ?? 0;
    if (t >= this.limits.perToken)
      throw resourceExhausted(
        `too many heavy requests in flight for this token (limit ${this.limits.perToken}); retry later`,
        { retryAfter: 1 },
      );
    if (pr >= this.limits.perProject)
      throw resourceExhausted(
        `too many heavy requests in flight for this project (limit ${this.limits.perProject}); retry later`,
        { retryAfter: 1 },
      );
    if (this.total >= this.limits.total)
      throw resourceExhausted("the server has too many heavy requests in flight; retry later", {
        retryAfter: 1,
      });
    this.byToken.set(p.token.id, t + 1);
    this.byProject.set(p.project.id, pr + 1);
    this.total++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      dec(this.byToken, p.token.id);
      dec(this.byProject, p.project.id);
    };
  }

  /** Takes a slot for the rest of this response (released when its socket side closes). */
  hold(p: Principal, reply: FastifyReply): void {
    const release = this.enter(p);
    const res = reply.raw;
    if (res.destroyed || res.writableFinished) {
      release();
      return;
    }
    res.once("close", release);
  }

  /** In-flight counts (for tests and metrics). */
  inFlight(p: Principal): { token: number; project: number } {
    return { token: this.byToken.get(p.token.id) ?? 0, project: this.byProject.get(p.project.id) ?? 0 };
  }
}

function dec(m: Map<string, number>, key: string): void {
  const n = (m.get(key) ?? 1) - 1;
  if (n <= 0) m.delete(key);
  else m.set(key, n);
}
