// @ts-check
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'coverage/', '.local/', 'artifact/', 'node_modules/'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ['*.js', '*.mjs', 'scripts/*.mjs'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
      // Adapters implement async ports; an in-memory one has nothing to await.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // The layer rule: only adapters and composition roots talk to Google SDKs.
    files: ['shared/**/*.ts', 'functions/**/*.ts'],
    ignores: ['shared/adapters/**', 'functions/**/index.ts', 'functions/dependencies.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['@google-cloud/*', 'google-auth-library', 'google-auth-library/*'],
              message:
                'Only shared/adapters and composition roots (functions/**/index.ts, functions/dependencies.ts) may import Google SDKs.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // expect.any()/expect.stringContaining() are typed any inside asymmetric matchers.
      '@typescript-eslint/no-unsafe-assignment': 'off',
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
);
