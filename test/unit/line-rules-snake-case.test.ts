/**
 * Proto3 JSON field names: a Gemini request may spell every field lowerCamelCase or snake_case
 * (parsers accept both); unknown fields are still refused, and one object naming a field both
 * ways is refused.
 */
import { describe, expect, it } from 'vitest';
import { validateJsonl } from '../../shared/core/jsonl.js';
import { geminiLineCheck } from '../../shared/core/line-rules.js';

const check = geminiLineCheck('publishers/google/models/gemini-2.5-flash');
const USER_TEXT = { role: 'user', parts: [{ text: 'hi' }] };

/** The first problem of a line whose `request` is `request`, or undefined. */
const problemOf = (request: unknown) => check({ request })?.message;

describe('item 13: snake_case field names', () => {
  it('item 13: a request written entirely in snake_case is accepted', () => {
    const request = {
      contents: [
        {
          role: 'user',
          parts: [
            { text: 'Describe these.' },
            { inline_data: { mime_type: 'image/png', data: 'AA==' } },
            { file_data: { mime_type: 'application/pdf', file_uri: 'gs://acme-input/a.pdf' } },
          ],
        },
        { role: 'model', parts: [{ function_call: { name: 'f', args: {} } }] },
        {
          role: 'user',
          parts: [
            {
              function_response: {
                name: 'f',
                response: {},
                parts: [{ file_data: { mime_type: 'image/png', file_uri: 'gs://acme-input/b' } }],
              },
            },
          ],
        },
        { role: 'model', parts: [{ executable_code: { language: 'PYTHON', code: 'x' } }] },
        { role: 'user', parts: [{ code_execution_result: { outcome: 'OUTCOME_OK' } }] },
      ],
      system_instruction: { parts: [{ text: 'Be brief.' }] },
      generation_config: { temperature: 0.2, max_output_tokens: 64 },
      safety_settings: [],
      tools: [],
      tool_config: {},
      labels: { team: 'a' },
      cached_content: 'projects/p/locations/l/cachedContents/c',
    };
    expect(problemOf(request)).toBeUndefined();
  });

  it('item 13: camelCase and snake_case may be mixed across objects', () => {
    expect(
      problemOf({
        contents: [{ parts: [{ inlineData: { mime_type: 'image/png', data: 'AA==' } }] }],
        generation_config: {},
        systemInstruction: { parts: [{ text: 'x' }] },
      }),
    ).toBeUndefined();
  });

  it.each([
    [
      { contents: [USER_TEXT], generation_config: 5 },
      'request.generation_config must be an object',
    ],
    [{ contents: [USER_TEXT], tool_config: [] }, 'request.tool_config must be an object'],
    [{ contents: [USER_TEXT], safety_settings: {} }, 'request.safety_settings must be an array'],
    [
      { contents: [USER_TEXT], system_instruction: { parts: [] } },
      'request.system_instruction.parts must be a non-empty array',
    ],
    [
      { contents: [USER_TEXT], system_instruction: { parts: [{ inline_data: { data: 'AA==' } }] } },
      'request.system_instruction.parts[0].inline_data needs string "mimeType" and "data"',
    ],
    [
      { contents: [{ parts: [{ inline_data: { mime_type: 7, data: 'AA==' } }] }] },
      'request.contents[0].parts[0].inline_data needs string "mimeType" and "data"',
    ],
    [
      { contents: [{ parts: [{ file_data: { mime_type: 'image/png' } }] }] },
      'request.contents[0].parts[0].file_data needs a string "fileUri"',
    ],
    [
      { contents: [{ parts: [{ file_data: { file_uri: 'file:///etc/passwd' } }] }] },
      'request.contents[0].parts[0].file_data.file_uri must start with gs:// or https://',
    ],
    [
      {
        contents: [
          {
            parts: [
              { function_response: { name: 'f', parts: [{ file_data: { file_uri: 'ftp://x' } }] } },
            ],
          },
        ],
      },
      'parts[0].function_response.parts[0].file_data.file_uri must start with gs:// or https://',
    ],
  ])('item 13: snake_case fields are checked like camelCase ones (%#)', (request, message) => {
    expect(problemOf(request)).toContain(message);
  });

  it('item 13: unknown fields are still refused, in either case', () => {
    expect(problemOf({ contents: [USER_TEXT], generation_confg: {} })).toContain(
      'unknown field "generation_confg"',
    );
    expect(problemOf({ contents: [USER_TEXT], Generation_Config: {} })).toContain(
      'unknown field "Generation_Config"',
    );
    expect(problemOf({ contents: [USER_TEXT], temperature: 1 })).toContain(
      'unknown field "temperature"',
    );
  });

  it('item 13: a part with text and inline_data has two kinds', () => {
    expect(
      problemOf({
        contents: [
          { parts: [{ text: 'x', inline_data: { mime_type: 'image/png', data: 'AA==' } }] },
        ],
      }),
    ).toContain(
      'request.contents[0].parts[0] has text and inline_data: a part holds exactly one kind',
    );
    expect(
      problemOf({
        contents: [
          { parts: [{ function_call: { name: 'f' }, file_data: { file_uri: 'gs://b/o' } }] },
        ],
      }),
    ).toContain('has file_data and function_call');
  });

  it.each([
    [
      { contents: [USER_TEXT], generationConfig: {}, generation_config: {} },
      'request has both "generationConfig" and "generation_config"',
    ],
    [
      {
        contents: [USER_TEXT],
        systemInstruction: { parts: [{ text: 'a' }] },
        system_instruction: { parts: [{ text: 'b' }] },
      },
      'request has both "systemInstruction" and "system_instruction"',
    ],
    [
      { contents: [USER_TEXT], cachedContent: 'a', cached_content: 'a' },
      'request has both "cachedContent" and "cached_content"',
    ],
    [
      {
        contents: [
          {
            parts: [
              {
                inlineData: { mimeType: 'image/png', data: 'AA==' },
                inline_data: { mime_type: 'image/png', data: 'AA==' },
              },
            ],
          },
        ],
      },
      'request.contents[0].parts[0] has both "inlineData" and "inline_data"',
    ],
    [
      { contents: [{ parts: [{ inline_data: { mimeType: 'a/b', mime_type: 'a/b', data: '' } }] }] },
      'parts[0].inline_data has both "mimeType" and "mime_type"',
    ],
    [
      {
        contents: [
          { parts: [{ fileData: { fileUri: 'gs://acme/a', file_uri: 'gs://elsewhere/b' } }] },
        ],
      },
      'parts[0].fileData has both "fileUri" and "file_uri"',
    ],
  ])('item 13: both spellings of one field in one object are refused (%#)', (request, message) => {
    const got = problemOf(request);
    expect(got).toContain(message);
    expect(got).toContain('use one spelling');
  });

  it('item 13: through the validator, a snake_case file is valid and a doubly spelled one is not', async () => {
    const good = JSON.stringify({
      request: { contents: [USER_TEXT], generation_config: { temperature: 0 } },
    });
    const bad = JSON.stringify({
      request: { contents: [USER_TEXT], tool_config: {}, toolConfig: {} },
    });
    const run = (text: string) =>
      validateJsonl(
        (async function* () {
          yield Buffer.from(text);
        })(),
        { provider: 'google' },
      );
    expect((await run(`${good}\n${good}\n`)).code).toBeUndefined();
    const result = await run(`${good}\n${bad}\n`);
    expect(result.code).toBe('INPUT.INVALID_JSONL');
    expect(result.errors[0]).toMatchObject({ line: 2 });
    expect(result.errors[0]?.message).toContain('both "toolConfig" and "tool_config"');
  });
});
