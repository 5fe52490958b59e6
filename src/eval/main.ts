// `tidal-eval` entry point: accuracy of full, TidalDecode and Quest attention through the
// engine, with prompts tokenized by the model's own tokenizer (the engine host's), or the
// tables of saved records (--load). Prints Markdown to stdout and progress to stderr.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { loadEngineAddon } from '../native/addon';
import { parseEvalArgs, USAGE } from './evalArgs';
import { tidalErrorCode } from '../native/errors';
import { appendResults, EvalResults, renderReport } from './report';
import { runEval } from './runEval';

async function main(argv: string[]): Promise<number> {
  if (argv[0] === '--help' || argv[0] === '-h') {
    console.log(USAGE);
    return 0;
  }
  try {
    const args = parseEvalArgs(argv);
    let results: EvalResults = { passkey: [], perplexity: [] };
    if (args.kind === 'load') {
      for (const file of args.load) appendResults(fs.readFileSync(file, 'utf8'), file, results);
    } else {
      results = await runEval(await loadEngineAddon(path.dirname(__filename)), args, (line) => console.error(line));
    }
    const note =
      args.kind === 'run' && args.kvFp8Simulation
        ? '**KV cache rounded as FP8 E4M3** (every K/V row written, one f16 scale per position and KV head, as the GPU FP8 cache stores it: ' +
          'the accuracy such a cache costs; the cache still held floats).\n\n'
        : args.kind === 'run' && args.kvCache === 'fp8'
          ? '**KV cache in FP8 E4M3** (the CUDA engine\'s own FP8 cache, one f16 scale per position and KV head: tidal.engine.kvCache "fp8").\n\n'
          : '';
    const report = note + renderReport(results, args.trainedLength);
    process.stdout.write(report);
    if (args.output !== undefined) fs.writeFileSync(args.output, report);
    return 0;
  } catch (error) {
    if (tidalErrorCode(error) === 'ERR_TIDAL_USAGE') {
      console.error(`tidal-eval: ${(error as Error).message}\n${USAGE}`);
      return 2;
    }
    console.error(`tidal-eval: ${(error as Error)?.message ?? String(error)}`);
    return 1;
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
