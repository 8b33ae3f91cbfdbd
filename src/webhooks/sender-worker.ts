import { parentPort, workerData } from 'node:worker_threads';
import { createWebhookPoster, type WebhookPosterOptions } from './http-poster.ts';
import { CROSSING_DELAY_MS, POSTER_READY, type PostReply, type PostRequest } from './sender-thread.ts';
import { createWebhookSender } from './webhook-sender.ts';

/**
 * The webhook thread (sender-thread.ts): renders, signs and POSTs each delivery it is sent, over
 * its own kept-alive connections, and answers with the outcomes, gathered for CROSSING_DELAY_MS;
 * both ways as JSON text.
 */
const sender = createWebhookSender({ poster: createWebhookPoster(workerData as WebhookPosterOptions) });
let replies: PostReply[] = [];
let replying = false;

parentPort!.on('message', (requests: string) => {
  for (const { n, ...request } of JSON.parse(requests) as PostRequest[]) {
    void sender.send(request).then((outcome) => {
      replies.push({ n, outcome });
      if (replying) return;
      replying = true;
      setTimeout(() => {
        replying = false;
        parentPort!.postMessage(JSON.stringify(replies));
        replies = [];
      }, CROSSING_DELAY_MS);
    });
  }
});
parentPort!.postMessage(POSTER_READY);
