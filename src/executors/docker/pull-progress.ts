import type { PullProgress } from '../executor.js';

/** One line of the engine's JSON answer to POST /images/create. */
export interface PullMessage {
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  error?: string;
  errorDetail?: { message?: string };
}

interface Layer {
  downloaded: number;
  total: number;
  extracted: number;
  /** Downloaded and checked (a small layer may say only this, with no byte count before it). */
  fetched: boolean;
  done: boolean;
}

const DIGEST_LINE = /^Digest: (sha256:[0-9a-f]{64})/;

/**
 * Follows a pull from the engine's messages: layers seen and finished, bytes downloaded of
 * bytes known. `feed` says whether the pull moved (a byte more downloaded or extracted, a layer
 * further), which is what the stall timeout watches.
 */
export class PullTracker {
  private readonly layers = new Map<string, Layer>();
  /** The manifest digest the engine pulled ("Digest: sha256:…"). */
  digest: string | null = null;
  /** The engine's error line, when the pull failed in the stream (it answered 200 first). */
  error: string | null = null;

  constructor(private readonly image: string) {}

  feed(message: PullMessage): boolean {
    if (message.error || message.errorDetail?.message) {
      this.error = message.errorDetail?.message ?? message.error ?? 'pull failed';
      return false;
    }
    const status = message.status ?? '';
    const digest = DIGEST_LINE.exec(status);
    if (digest) {
      this.digest = digest[1] as string;
      return true;
    }
    const id = message.id;
    if (!id || status.startsWith('Pulling from') || status.startsWith('Status:')) return false;
    const layer = this.layerOf(id, status);
    if (!layer) return false;
    const detail = message.progressDetail ?? {};
    const before = stepOf(layer);
    switch (status) {
      case 'Downloading':
        layer.downloaded = Math.max(layer.downloaded, detail.current ?? 0);
        if (detail.total && detail.total > 0) layer.total = detail.total;
        break;
      case 'Download complete':
      case 'Verifying Checksum':
        if (layer.total > 0) layer.downloaded = layer.total;
        layer.fetched = true;
        break;
      case 'Extracting':
        if (layer.total > 0) layer.downloaded = layer.total;
        layer.extracted = Math.max(layer.extracted, detail.current ?? 0);
        break;
      case 'Pull complete':
      case 'Already exists':
        if (layer.total > 0) layer.downloaded = layer.total;
        layer.done = true;
        break;
      default:
        break;
    }
    return before !== stepOf(layer);
  }

  get progress(): PullProgress {
    let bytes = 0;
    let totalBytes = 0;
    let layersDone = 0;
    for (const layer of this.layers.values()) {
      bytes += layer.downloaded;
      totalBytes += layer.total;
      if (layer.done) layersDone += 1;
    }
    return { image: this.image, layersDone, layers: this.layers.size, bytes, totalBytes };
  }

  /** A message about a layer id; only messages that name a layer's step make it one. */
  private layerOf(id: string, status: string): Layer | undefined {
    const known = this.layers.get(id);
    if (known) return known;
    if (
      !/^(Pulling fs layer|Waiting|Downloading|Already exists|Download complete|Extracting|Pull complete|Verifying Checksum)$/.test(
        status,
      )
    ) {
      return undefined;
    }
    const layer: Layer = { downloaded: 0, total: 0, extracted: 0, fetched: false, done: false };
    this.layers.set(id, layer);
    return layer;
  }
}

/** Where a layer is; a change of it is progress. */
function stepOf(layer: Layer): string {
  return `${layer.downloaded}/${layer.extracted}/${layer.fetched}/${layer.done}`;
}
