import type { FastifyRequest } from 'fastify';

/**
 * A bulk change (a retry, a bounce, a cancellation of a large scope) may take minutes on a large
 * queue, during which the socket carries no byte: the listener's idle timeout (connectionTimeout,
 * meant for dead or stalling peers) would close it, and the client would lose the answer of work
 * that goes on. Such a route lifts the idle timeout of its socket while it works; once it has
 * answered, Node arms the keep-alive timeout again.
 */
export function allowLongWork(request: FastifyRequest): void {
  request.raw.socket.setTimeout(0);
}
