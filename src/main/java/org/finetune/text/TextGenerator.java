package org.finetune.text;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import java.util.function.IntConsumer;
import org.finetune.data.NpyArray;
import org.finetune.data.TextDataset;

/**
 * Autoregressive generation from a causal language model that maps {@code token_ids} and
 * {@code padding_mask} ({@code [1, length]}) to next-token logits ({@code [1, length, vocab]}), as
 * a keras-hub {@code GPT2CausalLM} export does. Each step runs the model on the whole context (no
 * key/value cache) and picks the next token from the last position's logits: greedily (the first
 * largest logit, as {@code argmax} does) or by sampling with temperature, top-k and top-p, from a
 * seeded generator. A context longer than the model's positions keeps its latest tokens.
 */
public final class TextGenerator {
  /** The model: token_ids and padding_mask in, logits out. */
  @FunctionalInterface
  public interface Model {
    NpyArray logits(Map<String, NpyArray> inputs);
  }

  /**
   * How the next token is chosen.
   *
   * @param temperature 0 for greedy decoding; otherwise logits are divided by it before sampling
   * @param topK sample among the k likeliest tokens only (0: all)
   * @param topP sample among the likeliest tokens whose probabilities add up to p (1: all)
   * @param seed seeds the sampling
   */
  public record Sampling(double temperature, int topK, double topP, long seed) {
    public Sampling {
      if (!(temperature >= 0) || Double.isInfinite(temperature)) {
        throw new IllegalArgumentException("the temperature must be >= 0 (0: greedy), got " + temperature);
      }
      if (topK < 0) {
        throw new IllegalArgumentException("top-k must be >= 0 (0: no limit), got " + topK);
      }
      if (!(topP > 0 && topP <= 1)) {
        throw new IllegalArgumentException("top-p must lie in (0, 1], got " + topP);
      }
    }

    public static Sampling greedy() {
      return new Sampling(0, 0, 1, 0);
    }

    public boolean isGreedy() {
      return temperature == 0;
    }
  }

  /** A SavedModel's selected signature as the model; its one output is the logits. */
  public static Model of(org.finetune.model.KerasSavedModel savedModel) {
    return inputs -> {
      Map<String, NpyArray> out = savedModel.predictArrays(savedModel.info().signature(), inputs);
      if (out.size() != 1) {
        throw new IllegalStateException("a language model has one output (the logits); this signature has "
            + out.keySet());
      }
      return out.values().iterator().next();
    };
  }

  /**
   * The positions a GPT-2-style model can attend to: the rows of its {@code position_embedding}
   * layer's table; empty when it has none.
   */
  public static java.util.OptionalInt positions(org.finetune.savedmodel.ModelInfo info) {
    return info.variables().stream().filter(v -> v.layer() != null && v.layer().contains("position_embedding"))
        .filter(v -> v.shape().size() == 2).mapToInt(v -> v.shape().get(0).intValue()).findFirst();
  }

  private final Model model;
  private final int maxContext;
  private final int stopToken;

  /**
   * @param maxContext the model's positions (GPT-2: 1024); longer contexts keep their latest tokens
   * @param stopToken generation ends after this token (GPT-2: end of text); negative: never
   */
  public TextGenerator(Model model, int maxContext, int stopToken) {
    if (maxContext < 1) {
      throw new IllegalArgumentException("the context must hold >= 1 token, got " + maxContext);
    }
    this.model = model;
    this.maxContext = maxContext;
    this.stopToken = stopToken;
  }

  /**
   * Up to {@code maxNewTokens} tokens after {@code prompt}, each passed to {@code onToken} as
   * soon as it is chosen; the stop token, when reached, is the last one returned.
   */
  public int[] generate(int[] prompt, int maxNewTokens, Sampling sampling, IntConsumer onToken) {
    if (prompt.length == 0) {
      throw new IllegalArgumentException("the prompt holds no tokens");
    }
    if (maxNewTokens < 0) {
      throw new IllegalArgumentException("max new tokens must be >= 0, got " + maxNewTokens);
    }
    Random random = new Random(sampling.seed());
    int[] context = Arrays.copyOf(prompt, prompt.length + maxNewTokens);
    int length = prompt.length;
    int[] out = new int[maxNewTokens];
    int produced = 0;
    while (produced < maxNewTokens) {
      int from = Math.max(0, length - maxContext);
      float[] last = lastLogits(Arrays.copyOfRange(context, from, length));
      int next = sampling.isGreedy() ? argmax(last) : sample(last, sampling, random);
      context[length++] = next;
      out[produced++] = next;
      onToken.accept(next);
      if (next == stopToken) {
        break;
      }
    }
    return Arrays.copyOf(out, produced);
  }

  private float[] lastLogits(int[] window) {
    long[] shape = {1, window.length};
    int[] ones = new int[window.length];
    Arrays.fill(ones, 1);
    Map<String, NpyArray> inputs = new LinkedHashMap<>();
    inputs.put(TextDataset.TOKEN_IDS, NpyArray.ofInts(shape, window));
    inputs.put(TextDataset.PADDING_MASK, NpyArray.ofInts(shape, ones));
    NpyArray logits = model.logits(inputs);
    long[] s = logits.shape();
    if (s.length != 3 || s[0] != 1 || s[1] != window.length || !logits.dtype().equals("float32")) {
      throw new IllegalStateException("the model should return float32 logits [1, " + window.length
          + ", vocab], returned " + logits.dtype() + " " + Arrays.toString(s));
    }
    int vocab = (int) s[2];
    float[] row = new float[vocab];
    ByteBuffer b = ByteBuffer.wrap(logits.data()).order(ByteOrder.LITTLE_ENDIAN);
    b.position((window.length - 1) * vocab * 4);
    b.asFloatBuffer().get(row);
    return row;
  }

  /** The index of the first largest value. */
  static int argmax(float[] v) {
    int best = 0;
    for (int i = 1; i < v.length; i++) {
      if (v[i] > v[best]) {
        best = i;
      }
    }
    return best;
  }

  /** Whether token {@code a} comes before {@code b}: the larger logit first, the lower id on a tie. */
  private static boolean before(float[] logits, int a, int b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  }

  /**
   * The {@code k} likeliest token ids, likeliest first (ties by id). With {@code k} below the
   * vocabulary they are selected with a k-element heap rather than by sorting every token: a
   * generation step with top-k samples costs O(vocab log k), not O(vocab log vocab).
   */
  static Integer[] likeliest(float[] logits, int k) {
    int n = logits.length;
    int[] heap = new int[k]; // the worst kept token at the root
    int size = 0;
    for (int i = 0; i < n; i++) {
      if (size < k) {
        int at = size++;
        heap[at] = i;
        while (at > 0 && before(logits, heap[(at - 1) / 2], heap[at])) {
          int parent = (at - 1) / 2;
          int t = heap[parent];
          heap[parent] = heap[at];
          heap[at] = t;
          at = parent;
        }
      } else if (before(logits, i, heap[0])) {
        heap[0] = i;
        int at = 0;
        while (true) {
          int worst = at;
          for (int child = 2 * at + 1; child <= 2 * at + 2 && child < size; child++) {
            if (before(logits, heap[worst], heap[child])) {
              worst = child;
            }
          }
          if (worst == at) {
            break;
          }
          int t = heap[worst];
          heap[worst] = heap[at];
          heap[at] = t;
          at = worst;
        }
      }
    }
    Integer[] out = new Integer[size];
    for (int i = 0; i < size; i++) {
      out[i] = heap[i];
    }
    Arrays.sort(out, (a, b) -> before(logits, a, b) ? -1 : before(logits, b, a) ? 1 : 0);
    return out;
  }

  /** A token drawn from softmax(logits / temperature), restricted by top-k and top-p. */
  static int sample(float[] logits, Sampling s, Random random) {
    int n = logits.length;
    int keep = s.topK() > 0 ? Math.min(s.topK(), n) : n;
    Integer[] order = likeliest(logits, keep);
    double max = logits[order[0]] / s.temperature();
    double[] p = new double[keep];
    double total = 0;
    for (int i = 0; i < keep; i++) {
      p[i] = Math.exp(logits[order[i]] / s.temperature() - max);
      total += p[i];
    }
    if (s.topP() < 1) {
      double cumulative = 0;
      int cut = keep;
      for (int i = 0; i < keep; i++) {
        cumulative += p[i] / total;
        if (cumulative >= s.topP()) {
          cut = i + 1;
          break;
        }
      }
      keep = cut;
      total = 0;
      for (int i = 0; i < keep; i++) {
        total += p[i];
      }
    }
    double u = random.nextDouble() * total;
    for (int i = 0; i < keep; i++) {
      u -= p[i];
      if (u < 0) {
        return order[i];
      }
    }
    return order[keep - 1];
  }
}
