// POST /api/pull: downloading a catalog model for an HTTP client, as `alpaca pull ID` does. One
// download per model at a time; a second client asking for the same model follows the same
// download (as Ollama's pulls share their progress), and when the last one goes away the download
// stops, its part file kept for the next pull to resume.
import type { PullProgress, PullResult } from "../../../models/pull.js";
import { defaultModelsDir, pullModel } from "../../../models/pull.js";
import type { Catalog, CatalogEntry } from "../../../models/catalog.js";
import { loadCatalog } from "../../../models/catalog.js";

export interface PullFollower {
  progress(p: PullProgress): void;
  done(r: PullResult): void;
  failed(e: Error): void;
}

export interface PullService {
  /** The catalog entry a pull request names ("llama-3.2-3b-instruct-q4_0", with or without ":latest"). */
  find(name: string): CatalogEntry | undefined;
  /** Starts the entry's download or joins the one running; returns how to stop following. */
  follow(entry: CatalogEntry, follower: PullFollower): () => void;
}

interface Download {
  followers: Set<PullFollower>;
  abort: AbortController;
}

export function pullService(options: { dir?: string; catalog?: Catalog } = {}): PullService {
  const downloads = new Map<string, Download>();
  const catalog = () => options.catalog ?? loadCatalog();
  return {
    find(name) {
      const id = name.toLowerCase().replace(/:latest$/, "");
      return catalog().models.find((m) => m.id === id);
    },
    follow(entry, follower) {
      let d = downloads.get(entry.id);
      if (!d) {
        const started: Download = { followers: new Set(), abort: new AbortController() };
        d = started;
        downloads.set(entry.id, started);
        const every = (f: (x: PullFollower) => void) => {
          for (const x of [...started.followers]) f(x);
        };
        pullModel(entry.id, {
          dir: options.dir ?? defaultModelsDir(),
          catalog: options.catalog,
          signal: started.abort.signal,
          onProgress: (p) => every((x) => x.progress(p)),
        }).then(
          (r) => every((x) => x.done(r)),
          (e: unknown) => every((x) => x.failed(e instanceof Error ? e : new Error(String(e)))),
        ).finally(() => downloads.delete(entry.id));
      }
      const download = d;
      download.followers.add(follower);
      return () => {
        download.followers.delete(follower);
        if (download.followers.size === 0) download.abort.abort(new Error("nobody is waiting for this download any more"));
      };
    },
  };
}
