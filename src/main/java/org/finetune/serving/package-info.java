/**
 * Serving fine-tuned models inside a JVM service: {@link org.finetune.serving.Predictor} answers
 * from an exported SavedModel on many threads and swaps to a newer export without failing a call.
 */
package org.finetune.serving;
