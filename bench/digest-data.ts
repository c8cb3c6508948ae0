/**
 * A synthetic finished Gemini batch job for the digest benchmark: the input (one request per line)
 * and its prediction files as Vertex AI writes them, generated as streams of chunks (never the
 * whole output in memory) and reproducible from a seed.
 *
 * Every line is built from its own input line number, so an output line can echo its request
 * without the input being kept: request `j` is the same text in `input.jsonl` and in the output.
 * The output lines come in a shuffled order (a permutation of the line numbers, 4 bytes a row), cut
 * into `files` prediction files of consecutive output positions. One output position in 50 is a
 * failed row (so the failed requests are spread at random over the input), with the status text
 * Vertex writes (`Too Many Requests: {"error": {"code": 429, … "RESOURCE_EXHAUSTED"}}`, a few 400s
 * and 500s); the others succeed with a response carrying `usageMetadata`. One request in ten spells
 * its generation config in snake_case in the input and is echoed in camelCase, as the service may.
 *
 * Sizes: request texts of 200–6,000 characters and answers of 400–8,000, log-uniform, so that
 * 200,000 rows make ~1 GB of prediction output (and ~0.4 GB of input).
 */
import { mulberry32, type Random } from './generate-jsonl.js';

/** What the digest must find, counted while the job is made. */
export interface JobExpectations {
  rows: { succeeded: number; failed: number; missing: number };
  usage: {
    inputTokens: number;
    outputTokens: number;
    thinkingTokens: number;
    cachedTokens: number;
  };
}

/** Options of {@link syntheticJob}. */
export interface SyntheticJobOptions {
  rows: number;
  files: number;
  seed: number;
}

/** One output position in this many is a failed row. */
export const FAILED_EVERY = 50;
const FAILED_AT = 7;

const REQUEST_TEXT = { min: 200, max: 6_000 };
const ANSWER_TEXT = { min: 400, max: 8_000 };
/** Bytes gathered before a chunk is handed on. */
const CHUNK_BYTES = 1 << 20;

const STATUSES = [
  'Too Many Requests: {"error": {"code": 429, "message": "Resource exhausted. Please try again later. Please refer to https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.", "status": "RESOURCE_EXHAUSTED"}}',
  'Bad Request: {"error": {"code": 400, "message": "The input token count (1218934) exceeds the maximum number of tokens allowed (1048576).", "status": "INVALID_ARGUMENT"}}',
  'Internal Server Error: {"error": {"code": 500, "message": "Internal error encountered.", "status": "INTERNAL"}}',
];

const WORDS = (
  'the a of to and in is for on with as by at from that this it be are was or an which ' +
  'summarize translate classify review customer product order delivery invoice refund account ' +
  'please answer question following text document report sentence paragraph quickly carefully ' +
  'score sentiment positive negative neutral reason step list table json format output example ' +
  'weather city river mountain market price quarter revenue growth forecast team meeting notes ' +
  'café résumé naïve Größe 日本語 東京タワー "quoted" C:\\temp\\file.txt'
).split(' ');

/** A pool of text that texts are sliced from (only BMP characters: a slice never splits a pair). */
function corpus(rng: Random): string {
  const words: string[] = [];
  let length = 0;
  while (length < 1 << 20) {
    const word = WORDS[Math.floor(rng() * WORDS.length)] ?? 'the';
    const sep = rng() < 0.08 ? '.\n' : ' ';
    words.push(word + sep);
    length += word.length + sep.length;
  }
  return words.join('');
}

const logUniform = (rng: Random, { min, max }: { min: number; max: number }): number =>
  Math.round(min * Math.exp(rng() * Math.log(max / min)));

/** The synthetic job: its input, its prediction files, and what a digest must find in them. */
export function syntheticJob(options: SyntheticJobOptions) {
  const { rows, files, seed } = options;
  const pool = corpus(mulberry32(seed));
  const text = (rng: Random, chars: number): string => {
    const start = Math.floor(rng() * (pool.length - chars));
    return pool.slice(start, start + chars);
  };
  /** Request `j` as it is in the input, and as the output echoes it. */
  const request = (j: number): { input: object; echo: object; chars: number } => {
    const rng = mulberry32(seed ^ Math.imul(j + 1, 0x9e3779b1));
    const body = text(rng, logUniform(rng, REQUEST_TEXT));
    const contents = [{ role: 'user', parts: [{ text: `Review ${j + 1}: ${body}` }] }];
    const system =
      j % 4 === 0
        ? { systemInstruction: { parts: [{ text: 'You are a careful review classifier.' }] } }
        : {};
    const temperature = 0.2;
    const maxOutputTokens = 2048;
    const echo = { contents, ...system, generationConfig: { temperature, maxOutputTokens } };
    const input =
      j % 10 === 3
        ? {
            contents,
            ...system,
            generation_config: { max_output_tokens: maxOutputTokens, temperature },
          }
        : echo;
    return { input, echo, chars: body.length + 60 };
  };

  // Output position → input line: a seeded Fisher–Yates shuffle.
  const order = new Uint32Array(rows);
  for (let i = 0; i < rows; i++) order[i] = i;
  const shuffle = mulberry32(seed + 1);
  for (let i = rows - 1; i > 0; i--) {
    const k = Math.floor(shuffle() * (i + 1));
    const t = order[i] ?? 0;
    order[i] = order[k] ?? 0;
    order[k] = t;
  }
  const isFailed = (position: number): boolean => position % FAILED_EVERY === FAILED_AT;
  const failed = rows > FAILED_AT ? Math.floor((rows - FAILED_AT - 1) / FAILED_EVERY) + 1 : 0;
  const expected: JobExpectations = {
    rows: { succeeded: rows - failed, failed, missing: 0 },
    usage: { inputTokens: 0, outputTokens: 0, thinkingTokens: 0, cachedTokens: 0 },
  };

  const outputLine = (position: number): string => {
    const j = order[position] ?? 0;
    const { echo, chars } = request(j);
    const processed = new Date(Date.UTC(2026, 10, 26, 10, 5, 0, position * 7)).toISOString();
    const processedTime = `${processed.slice(0, -1)}+00:00`;
    if (isFailed(position)) {
      const status =
        STATUSES[position % 500 === FAILED_AT ? 1 : position % 700 === FAILED_AT ? 2 : 0];
      return JSON.stringify({ status, processed_time: processedTime, request: echo });
    }
    const rng = mulberry32((seed * 31) ^ Math.imul(j + 1, 0x85ebca6b));
    const answer = text(rng, logUniform(rng, ANSWER_TEXT));
    const promptTokenCount = Math.ceil(chars / 4);
    const candidatesTokenCount = Math.ceil(answer.length / 4);
    const thoughtsTokenCount = j % 2 === 0 ? Math.floor(rng() * 512) : 0;
    const cachedContentTokenCount = j % 4 === 0 ? 8 : 0;
    const usage = expected.usage;
    usage.inputTokens += promptTokenCount;
    usage.outputTokens += candidatesTokenCount;
    usage.thinkingTokens += thoughtsTokenCount;
    usage.cachedTokens += cachedContentTokenCount;
    return JSON.stringify({
      status: '',
      processed_time: processedTime,
      request: echo,
      response: {
        candidates: [
          {
            content: { role: 'model', parts: [{ text: answer }] },
            finishReason: 'STOP',
            avgLogprobs: -Math.round(rng() * 1e6) / 1e7,
          },
        ],
        usageMetadata: {
          promptTokenCount,
          candidatesTokenCount,
          totalTokenCount: promptTokenCount + candidatesTokenCount + thoughtsTokenCount,
          ...(cachedContentTokenCount ? { cachedContentTokenCount } : {}),
          ...(thoughtsTokenCount ? { thoughtsTokenCount } : {}),
          trafficType: 'ON_DEMAND',
          promptTokensDetails: [{ modality: 'TEXT', tokenCount: promptTokenCount }],
          candidatesTokensDetails: [{ modality: 'TEXT', tokenCount: candidatesTokenCount }],
        },
        modelVersion: 'gemini-2.5-flash',
        createTime: processed,
        responseId: `bench-${j.toString(36)}-${position.toString(36)}`,
      },
    });
  };

  async function* chunks(count: number, line: (i: number) => string): AsyncGenerator<Buffer> {
    let batch: string[] = [];
    let bytes = 0;
    for (let i = 0; i < count; i++) {
      const text = `${line(i)}\n`;
      batch.push(text);
      bytes += text.length;
      if (bytes >= CHUNK_BYTES) {
        yield Buffer.from(batch.join(''));
        batch = [];
        bytes = 0;
      }
    }
    if (batch.length > 0) yield Buffer.from(batch.join(''));
  }

  const perFile = Math.ceil(rows / files);
  return {
    expected,
    /** The input, in order (the pinned copy the digest reads twice). */
    input: (): AsyncGenerator<Buffer> =>
      chunks(rows, (j) => JSON.stringify({ request: request(j).input })),
    /** Prediction file names, `predictions_00001-of-00004.jsonl` …; the usage is counted as made. */
    files: Array.from({ length: files }, (_, f) => {
      const from = Math.min(rows, f * perFile);
      const to = Math.min(rows, from + perFile);
      const name = `predictions_${String(f + 1).padStart(5, '0')}-of-${String(files).padStart(5, '0')}.jsonl`;
      return {
        name,
        lines: to - from,
        content: () => chunks(to - from, (i) => outputLine(from + i)),
      };
    }),
  };
}
