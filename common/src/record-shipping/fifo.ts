/**
 * A first-in first-out queue with O(1) push and batch take. Array.shift() is O(n), which at
 * 20 000 queued records would make every batch cost a copy of the whole queue.
 */
export class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  /** Removes and returns up to `max` items from the front. */
  take(max: number): T[] {
    const end = Math.min(this.items.length, this.head + Math.max(0, max));
    const out = this.items.slice(this.head, end);
    this.head = end;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.items.length) {
      // Drop the consumed prefix once it is the larger part, so memory follows the queue's length.
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return out;
  }

  /** Removes and returns everything. */
  drain(): T[] {
    return this.take(this.length);
  }

  /** Keeps only the items `keep` accepts; returns how many were removed. */
  retain(keep: (item: T) => boolean): number {
    const before = this.length;
    this.items = this.items.slice(this.head).filter(keep);
    this.head = 0;
    return before - this.items.length;
  }
}
