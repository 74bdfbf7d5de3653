import { EventEmitter } from 'node:events';
import { Backend, type HealthThresholds, type StateChange } from './backend.ts';
import { LeastInFlightBalancer } from './balancer.ts';
import { normalizeBackendUrl } from './backend-url.ts';

export interface BackendPoolEvents {
  added: [Backend];
  change: [StateChange];
}

export type AddResult = { backend: Backend; created: boolean };

/**
 * The set of replicas behind one route. Keeps the list of backends in rotation ready for the
 * balancer (rebuilt only when a state changes, not per request) and forgets removed backends.
 */
export class BackendPool extends EventEmitter<BackendPoolEvents> {
  private readonly byUrl = new Map<string, Backend>();
  /** Healthy backends, in insertion order. */
  private rotation: Backend[] = [];
  private readonly balancer = new LeastInFlightBalancer();

  constructor(readonly name: string, private readonly thresholds: HealthThresholds) {
    super();
  }

  /** Adds a backend (pending until it passes a check); a draining one is restored; others are left as they are. */
  add(rawUrl: string): AddResult {
    const url = normalizeBackendUrl(rawUrl);
    const existing = this.byUrl.get(url);
    if (existing) {
      existing.restore();
      return { backend: existing, created: false };
    }
    const backend = new Backend(url, this.thresholds, (change) => this.onStateChange(change));
    this.byUrl.set(url, backend);
    this.emit('added', backend);
    return { backend, created: true };
  }

  get(rawUrl: string): Backend | undefined {
    let url: string;
    try {
      url = normalizeBackendUrl(rawUrl);
    } catch {
      return undefined;
    }
    return this.byUrl.get(url);
  }

  /** Drains a backend; undefined when there is no such backend. */
  drain(rawUrl: string): Backend | undefined {
    const backend = this.get(rawUrl);
    backend?.drain();
    return backend;
  }

  remove(rawUrl: string): Backend | undefined {
    const backend = this.get(rawUrl);
    backend?.remove('removed by request');
    return backend;
  }

  backends(): Backend[] {
    return [...this.byUrl.values()];
  }

  get healthyCount(): number {
    return this.rotation.length;
  }

  get size(): number {
    return this.byUrl.size;
  }

  /** The backend for the next request, or null when none is in rotation (other than `exclude`). */
  pick(exclude: Backend | null = null): Backend | null {
    return this.balancer.pick(this.rotation, exclude);
  }

  private onStateChange(change: StateChange): void {
    if (change.from === 'healthy' || change.to === 'healthy') {
      this.rotation = [...this.byUrl.values()].filter((b) => b.available);
    }
    if (change.to === 'removed') this.byUrl.delete(change.backend.url);
    this.emit('change', change);
    // Its held requests (LL-HLS) only wait: move them to a replica that is in rotation, if there is one
    // (with none, they stay: the replica may still answer them).
    if (change.to === 'unhealthy' && this.rotation.length > 0) change.backend.moveHolds();
  }
}
