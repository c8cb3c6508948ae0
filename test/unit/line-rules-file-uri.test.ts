/**
 * The allow-list of file URIs (a confused-deputy defence: Vertex reads `fileData.fileUri`, and
 * Claude reads an image or document `source.url`, as the Vertex service agent, which may read more
 * than whoever uploaded the input).
 */
import { describe, expect, it } from 'vitest';
import { validateJsonl, type ValidateOptions } from '../../shared/core/jsonl.js';
import {
  anthropicLineCheck,
  geminiLineCheck,
  uriLocation,
  type FileUriAllowList,
} from '../../shared/core/line-rules.js';

const ALLOWED: FileUriAllowList = {
  test: (uri) => uri.startsWith('gs://acme-input/'),
  describe: 'gs://acme-input/ (ALLOWED_FILE_URI_PREFIXES)',
};

const geminiLine = (part: Record<string, unknown>): string =>
  JSON.stringify({ request: { contents: [{ role: 'user', parts: [{ text: 'see' }, part] }] } });
const anthropicLine = (id: string, content: unknown[]): string =>
  JSON.stringify({
    custom_id: id,
    request: {
      messages: [{ role: 'user', content }],
      anthropic_version: 'vertex-2023-10-16',
      max_tokens: 16,
    },
  });
const imageFrom = (url: string) => ({ type: 'image', source: { type: 'url', url } });

async function validate(lines: string[], options: ValidateOptions) {
  return validateJsonl(
    (async function* () {
      yield Buffer.from(lines.join('\n') + '\n');
    })(),
    options,
  );
}

describe('item 16: file URI allow-list', () => {
  const allowedLine = geminiLine({ fileData: { fileUri: 'gs://acme-input/img/1.png' } });
  const secretUri = 'gs://other-bucket/customers/jane-doe/medical-record.pdf';

  it('item 16: a Gemini fileData.fileUri outside the allow-list is INPUT.FILE_URI_NOT_ALLOWED', async () => {
    const result = await validate(
      [allowedLine, geminiLine({ fileData: { fileUri: secretUri, mimeType: 'application/pdf' } })],
      { provider: 'google', fileUriAllowed: ALLOWED },
    );
    expect(result.code).toBe('INPUT.FILE_URI_NOT_ALLOWED');
    expect(result.errors).toHaveLength(1);
    const error = result.errors[0]!;
    expect(error.line).toBe(2);
    expect(error.message).toContain('request.contents[0].parts[1].fileData.fileUri');
    expect(error.message).toContain('gs://other-bucket');
    expect(error.message).toContain('gs://acme-input/ (ALLOWED_FILE_URI_PREFIXES)');
    // Only the scheme and bucket of the offending URI: the object name is customer content.
    expect(error.message).not.toContain('customers');
    expect(error.message).not.toContain('medical');
  });

  it('item 16: the snake_case spelling file_data.file_uri is checked too', async () => {
    const result = await validate(
      [geminiLine({ file_data: { file_uri: secretUri, mime_type: 'application/pdf' } })],
      { provider: 'google', fileUriAllowed: ALLOWED },
    );
    expect(result.code).toBe('INPUT.FILE_URI_NOT_ALLOWED');
    expect(result.errors[0]?.message).toContain('parts[1].file_data.file_uri points to');
  });

  it('item 16: system instructions and function-response files are checked too', () => {
    const check = geminiLineCheck('gemini-2.5-flash', { fileUriAllowed: ALLOWED });
    const inSystem = check({
      request: {
        contents: [{ parts: [{ text: 'x' }] }],
        systemInstruction: { parts: [{ fileData: { fileUri: 'gs://evil/x' } }] },
      },
    });
    expect(inSystem).toMatchObject({ code: 'INPUT.FILE_URI_NOT_ALLOWED' });
    expect(inSystem?.message).toContain('request.systemInstruction.parts[0].fileData.fileUri');
    const inResponse = check({
      request: {
        contents: [
          {
            role: 'user',
            parts: [
              {
                functionResponse: {
                  name: 'f',
                  response: {},
                  parts: [{ fileData: { fileUri: 'https://evil.example/x' } }],
                },
              },
            ],
          },
        ],
      },
    });
    expect(inResponse).toMatchObject({ code: 'INPUT.FILE_URI_NOT_ALLOWED' });
    expect(inResponse?.message).toContain('functionResponse.parts[0].fileData.fileUri');
    expect(inResponse?.message).toContain('https://evil.example');
  });

  it('item 16: every bad line is reported, each with the new code as the result code', async () => {
    const bad = geminiLine({ fileData: { fileUri: 'gs://x-bucket/a' } });
    const result = await validate([bad, allowedLine, bad], {
      provider: 'google',
      fileUriAllowed: ALLOWED,
    });
    expect(result.errors.map((e) => e.line)).toEqual([1, 3]);
    expect(result.complete).toBe(true);
  });

  it('item 16: without an allow-list any gs:// or https:// URI passes; other schemes never do', async () => {
    const other = geminiLine({ fileData: { fileUri: secretUri } });
    expect((await validate([other], { provider: 'google' })).code).toBeUndefined();
    const ftp = geminiLine({ fileData: { fileUri: 'ftp://acme-input/x' } });
    const result = await validate([ftp], { provider: 'google', fileUriAllowed: ALLOWED });
    expect(result.code).toBe('INPUT.INVALID_JSONL');
    expect(result.errors[0]?.message).toContain('must start with gs:// or https://');
  });

  it('item 16: user info, paths and queries of an https URI are never quoted', async () => {
    const result = await validate(
      [
        geminiLine({
          fileData: { fileUri: 'https://user:s3cret@files.example:8443/p/q?token=abc' },
        }),
      ],
      { provider: 'google', fileUriAllowed: ALLOWED },
    );
    expect(result.code).toBe('INPUT.FILE_URI_NOT_ALLOWED');
    const message = result.errors[0]!.message;
    expect(message).toContain('https://files.example:8443/…');
    for (const secret of ['user', 's3cret', 'token', 'abc', '/p/q']) {
      expect(message).not.toContain(secret);
    }
  });

  it('item 16: an Anthropic image or document source.url outside the allow-list is refused', async () => {
    const options: ValidateOptions = {
      provider: 'anthropic',
      model: 'publishers/anthropic/models/claude-3-5-haiku',
      fileUriAllowed: {
        test: (uri) => uri.startsWith('https://cdn.acme.example/'),
        describe: 'https://cdn.acme.example/',
      },
    };
    const ok = anthropicLine('r1', [
      imageFrom('https://cdn.acme.example/a.png'),
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AA==' } },
      { type: 'text', text: 'what is this?' },
    ]);
    const bad = anthropicLine('r2', [
      { type: 'text', text: 'summarize' },
      { type: 'document', source: { type: 'url', url: 'https://intranet.corp/secret-plan.pdf' } },
    ]);
    const result = await validate([ok, bad], options);
    expect(result.code).toBe('INPUT.FILE_URI_NOT_ALLOWED');
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]?.line).toBe(2);
    expect(result.errors[0]?.message).toContain('request.messages[0].content[1].source.url');
    expect(result.errors[0]?.message).toContain('https://intranet.corp/…');
    expect(result.errors[0]?.message).not.toContain('secret-plan');
    expect((await validate([ok, bad], { ...options, fileUriAllowed: undefined })).code).toBe(
      undefined,
    );
  });

  it('item 16: an Anthropic url source inside a tool_result is checked too', () => {
    const check = anthropicLineCheck('claude', { fileUriAllowed: ALLOWED });
    const problem = check({
      custom_id: 'r1',
      request: {
        messages: [
          { role: 'user', content: 'hi' },
          { role: 'assistant', content: [{ type: 'tool_use', id: 't', name: 'f', input: {} }] },
          {
            role: 'user',
            content: [
              {
                type: 'tool_result',
                tool_use_id: 't',
                content: [imageFrom('https://evil.example/i')],
              },
            ],
          },
        ],
        anthropic_version: 'vertex-2023-10-16',
        max_tokens: 8,
      },
    });
    expect(problem).toMatchObject({ code: 'INPUT.FILE_URI_NOT_ALLOWED' });
    expect(problem?.message).toContain('request.messages[2].content[0].content[0].source.url');
  });

  it('item 16: deeply nested content blocks do not overflow the stack; the line is refused', () => {
    const check = anthropicLineCheck('claude', { fileUriAllowed: ALLOWED });
    let content: unknown[] = [imageFrom('https://evil.example/deep')];
    for (let i = 0; i < 100_000; i++) content = [{ type: 'tool_result', content }];
    const problem = check({
      custom_id: 'r1',
      request: {
        messages: [{ role: 'user', content }],
        anthropic_version: 'vertex-2023-10-16',
        max_tokens: 8,
      },
    });
    // Refused for its depth before any url that deep is looked at; the message stays short.
    expect(problem?.message).toMatch(/nests content more than 16 levels deep/);
    expect(problem?.message.length).toBeLessThan(400);
  });

  it('item 16: uriLocation keeps only scheme and bucket or host', () => {
    expect(uriLocation('gs://bucket-1/a/b.png')).toBe('gs://bucket-1');
    expect(uriLocation('HTTPS://Host.example/a')).toBe('https://Host.example');
    expect(uriLocation('https://u:p@h.example/a')).toBe('https://h.example');
    expect(uriLocation('gs://bad bucket name/a')).toBeUndefined();
    expect(uriLocation('data:image/png;base64,AAAA')).toBeUndefined();
  });
});
