import { watch } from 'node:fs';

/**
 * Change events of one folder: ingest renames every new playlist version (and every part) into
 * its folder, so an event with the file's name means "read it now". Local file systems deliver
 * them (inotify); NFS does not for changes made on another machine, hence the feed and the
 * re-reads in live-playlist.ts.
 */
export interface FolderWatch {
  close(): void;
}

/** fs.watch, not persistent (a watcher must never keep the process alive on its own); null when the folder is not there. */
export function watchFolder(dir: string, onChange: (filename: string | null) => void, onError: () => void): FolderWatch | null {
  try {
    const watcher = watch(dir, { persistent: false }, (_event, filename) => onChange(filename === null ? null : String(filename)));
    watcher.on('error', onError);
    return watcher;
  } catch {
    return null; // the folder is not there (any more)
  }
}

