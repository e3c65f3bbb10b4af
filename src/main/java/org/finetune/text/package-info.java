/**
 * Text to token ids and back for the language models finetune trains: {@link
 * org.finetune.text.Gpt2Tokenizer} is GPT-2's byte-level byte-pair encoding (OpenAI's {@code
 * r50k_base}, 50,257 ids, {@code <|endoftext|>} = 50256), with the vocabulary bundled so that it
 * works offline, its ids equal to keras-hub's {@code GPT2Tokenizer} built from GPT-2's own {@code
 * encoder.json} and {@code vocab.bpe}, and a streaming detokenizer that emits only whole UTF-8
 * characters while a model generates one token at a time.
 */
package org.finetune.text;
