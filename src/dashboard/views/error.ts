import { html } from '../html.js';
import { page } from './layout.js';

/** An error page: what failed and what to do, in the page and with the HTTP status. */
export function errorPage(queue: string, title: string, message: string): string {
  return page(title, queue, html`<h2>${title}</h2><p class="error" id="error">${message}</p>`);
}
