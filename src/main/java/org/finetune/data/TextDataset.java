package org.finetune.data;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Random;

/**
 * Tokenised documents as fixed-length blocks for causal-LM training, the inputs a keras-hub
 * {@code GPT2CausalLM} export takes ({@code token_ids} and {@code padding_mask}, int32
 * {@code [batch, length]}).
 *
 * <p>The documents become one token stream with the end-of-text token before each document
 * (GPT-2's separator). The stream is cut into blocks of {@code length} tokens that overlap by
 * one, so that every next-token transition of the stream is predicted exactly once (the causal-LM
 * loss predicts positions 1..length-1 of a block from the positions before them); the last block
 * is padded, with its padding masked out. Blocks are shuffled per epoch, seeded by the seed and
 * the epoch, so an epoch's batches depend only on the epoch and their position (exact resume).
 */
public final class TextDataset {
  /** Names of the two inputs, as keras-hub's GPT-2 exports them. */
  public static final String TOKEN_IDS = "token_ids";

  public static final String PADDING_MASK = "padding_mask";

  /**
   * @param length tokens per block, at least 2
   * @param batchSize blocks per batch
   * @param shuffle reshuffle every epoch
   * @param seed seeds the shuffling
   */
  public record Options(int length, int batchSize, boolean shuffle, long seed) {
    public Options {
      if (length < 2) {
        throw new IllegalArgumentException("the sequence length must be >= 2 tokens, got " + length);
      }
      if (batchSize < 1) {
        throw new IllegalArgumentException("the batch size must be >= 1, got " + batchSize);
      }
    }

    public Options shuffled(boolean on) {
      return new Options(length, batchSize, on, seed);
    }
  }

  private final int[] stream;
  private final int blocks;
  private final Options options;

  private TextDataset(int[] stream, Options options) {
    this.stream = stream;
    this.options = options;
    int stride = options.length() - 1;
    this.blocks = stream.length <= 1 ? 0 : (stream.length - 2) / stride + 1;
  }

  /** Blocks over {@code documents} (token ids each), {@code separator} before every document. */
  public static TextDataset of(List<int[]> documents, int separator, Options options) {
    long total = 0;
    for (int[] d : documents) {
      total += d.length + 1;
    }
    if (total > Integer.MAX_VALUE - 8) {
      throw new IllegalArgumentException("the corpus holds " + total + " tokens; at most " + Integer.MAX_VALUE
          + " fit in one dataset");
    }
    int[] stream = new int[(int) total];
    int at = 0;
    for (int[] d : documents) {
      stream[at++] = separator;
      System.arraycopy(d, 0, stream, at, d.length);
      at += d.length;
    }
    TextDataset out = new TextDataset(stream, options);
    if (out.blocks == 0) {
      throw new IllegalArgumentException("the text holds no tokens to predict");
    }
    return out;
  }

  public Options options() {
    return options;
  }

  /** Tokens in the stream (separators included). */
  public int tokens() {
    return stream.length;
  }

  /** Next-token predictions per epoch: every transition of the stream once. */
  public long predictions() {
    return stream.length - 1L;
  }

  public int blocks() {
    return blocks;
  }

  public int batchesPerEpoch() {
    return (blocks + options.batchSize() - 1) / options.batchSize();
  }

  /** Block order of {@code epoch}. */
  public List<Integer> order(int epoch) {
    List<Integer> order = new ArrayList<>(blocks);
    for (int i = 0; i < blocks; i++) {
      order.add(i);
    }
    if (options.shuffle()) {
      Collections.shuffle(order, new Random(options.seed() * 1_000_003L + epoch));
    }
    return order;
  }

  /** Epoch {@code epoch}'s batches from batch {@code start} on, each {@code token_ids} and {@code padding_mask}. */
  public Iterator<Map<String, NpyArray>> epoch(int epoch, int start) {
    List<Integer> order = order(epoch);
    int batches = batchesPerEpoch();
    return new Iterator<>() {
      private int next = Math.max(0, start);

      @Override
      public boolean hasNext() {
        return next < batches;
      }

      @Override
      public Map<String, NpyArray> next() {
        if (!hasNext()) {
          throw new NoSuchElementException();
        }
        int from = next++ * options.batchSize();
        return batch(order.subList(from, Math.min(from + options.batchSize(), order.size())));
      }
    };
  }

  /** The given blocks as one batch. */
  Map<String, NpyArray> batch(List<Integer> blockIndices) {
    int n = blockIndices.size();
    int length = options.length();
    int[] ids = new int[n * length];
    int[] mask = new int[n * length];
    for (int r = 0; r < n; r++) {
      int from = blockIndices.get(r) * (length - 1);
      int count = Math.min(length, stream.length - from);
      System.arraycopy(stream, from, ids, r * length, count);
      java.util.Arrays.fill(mask, r * length, r * length + count, 1);
    }
    long[] shape = {n, length};
    Map<String, NpyArray> out = new LinkedHashMap<>();
    out.put(TOKEN_IDS, NpyArray.ofInts(shape, ids));
    out.put(PADDING_MASK, NpyArray.ofInts(shape, mask));
    return out;
  }
}
