/** User ids. */
import { MAX_USER_LENGTH } from './limits.js';

/** Whether `id` is a valid user id: a string of 1–200 characters without control characters. */
export function isValidUser(id: unknown): id is string {
  // eslint-disable-next-line no-control-regex
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_USER_LENGTH && !/[\u0000-\u001f\u007f]/.test(id);
}
