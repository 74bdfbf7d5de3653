import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';

/** A certificate chain and its private key (PEM), read once at start. */
export interface TlsCredentials {
  cert: Buffer;
  key: Buffer;
  certFile: string;
  keyFile: string;
}

export interface TlsCheck {
  /** Problems by variable name; empty when TLS is off or the pair is usable. */
  problems: Array<{ variable: 'TLS_CERT_FILE' | 'TLS_KEY_FILE'; message: string }>;
  credentials: TlsCredentials | null;
}

/**
 * TLS_CERT_FILE + TLS_KEY_FILE: both or neither, both readable, and a pair OpenSSL accepts (PEM that
 * parses, a key that matches the certificate). Checked at start so a bad file is a configuration
 * error with exit code 2, not a proxy that listens and fails every handshake.
 */
export function checkTlsFiles(certFile: string | undefined, keyFile: string | undefined): TlsCheck {
  if (certFile === undefined && keyFile === undefined) return { problems: [], credentials: null };
  if (certFile === undefined) return { problems: [{ variable: 'TLS_CERT_FILE', message: 'required when TLS_KEY_FILE is set (set both for HTTPS, or neither)' }], credentials: null };
  if (keyFile === undefined) return { problems: [{ variable: 'TLS_KEY_FILE', message: 'required when TLS_CERT_FILE is set (set both for HTTPS, or neither)' }], credentials: null };
  const problems: TlsCheck['problems'] = [];
  const read = (variable: 'TLS_CERT_FILE' | 'TLS_KEY_FILE', file: string): Buffer | null => {
    try {
      return readFileSync(file);
    } catch (err) {
      problems.push({ variable, message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
      return null;
    }
  };
  const cert = read('TLS_CERT_FILE', certFile);
  const key = read('TLS_KEY_FILE', keyFile);
  if (cert === null || key === null) return { problems, credentials: null };
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    return { problems: [{ variable: 'TLS_CERT_FILE', message: `${certFile} and ${keyFile} are not a usable certificate and key: ${(err as Error).message}` }], credentials: null };
  }
  return { problems: [], credentials: { cert, key, certFile, keyFile } };
}
