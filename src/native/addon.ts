// Typed loader of the native engine addon (native/build → dist/native/tidal_native.node).
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface CudaProbe {
  compiled: boolean;
  deviceCount: number;
  usable: boolean;
  deviceName: string;
  computeCapability: number;
  memoryTotalGiB: number;
  message: string;
}

export interface NativeAddon {
  engineVersion(): string;
  compiledBackends(): string[];
  probeCuda(): CudaProbe;
}

export class AddonLoadError extends Error {}

// Candidate locations, in order: next to the bundle (packaged extension), then the build tree.
export function addonCandidates(bundleDir: string): string[] {
  return [
    path.join(bundleDir, 'native', 'tidal_native.node'),
    path.join(bundleDir, '..', 'native', 'build', 'Release', 'tidal_native.node'),
  ];
}

export function loadAddon(bundleDir: string): NativeAddon {
  const candidates = addonCandidates(bundleDir);
  const found = candidates.find((candidate) => fs.existsSync(candidate));
  if (!found) {
    throw new AddonLoadError(
      `The Tidal native engine is missing (looked for ${candidates.join(', ')}). ` +
        'Reinstall the extension, or run `npm install` in a source checkout to build it.',
    );
  }
  try {
    // The addon is a plain Node-API module: require() is the loader.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(found) as NativeAddon;
  } catch (error) {
    throw new AddonLoadError(
      `The Tidal native engine at ${found} could not be loaded on ${process.platform}-${process.arch} ` +
        `(Node ${process.versions.node}): ${(error as Error).message}`,
    );
  }
}
