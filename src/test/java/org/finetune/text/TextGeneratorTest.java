package org.finetune.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.Gson;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.finetune.model.KerasSavedModel;
import org.finetune.testing.Fixture;
import org.finetune.testing.Python;
import org.junit.jupiter.api.Test;

/** Generation against keras-hub's {@code GPT2CausalLM.generate} with its greedy sampler. */
class TextGeneratorTest {
  private static final int NEW_TOKENS = 24;

  @Test
  void greedyGenerationEqualsKerasHub() {
    Fixture f = Fixture.of("generated/gpt2_small/keras3_export");
    int[][] prompts = {{464, 1893, 286}, {50256, 40, 716, 257, 3303, 13}, {1212}, {7454, 2402, 257, 640, 11, 612, 373}};
    String reference = Python.runWithInput("reference_generate.py", new Gson().toJson(prompts), "--model",
        f.root().getParent().resolve("keras").resolve("model.keras").toString(), "--max-new",
        String.valueOf(NEW_TOKENS));
    int[][] expected = new Gson().fromJson(reference.trim(), int[][].class);
    try (KerasSavedModel m = KerasSavedModel.open(f.model())) {
      assertEquals(128, TextGenerator.positions(m.info()).orElseThrow());
      TextGenerator g = new TextGenerator(TextGenerator.of(m), 128, -1);
      for (int i = 0; i < prompts.length; i++) {
        List<Integer> streamed = new ArrayList<>();
        int[] java = g.generate(prompts[i], NEW_TOKENS, TextGenerator.Sampling.greedy(), streamed::add);
        assertArrayEquals(expected[i], java, "prompt " + Arrays.toString(prompts[i]));
        assertEquals(Arrays.stream(java).boxed().toList(), streamed);
      }
      // A stop token ends generation and is the last token returned.
      int stop = expected[0][3];
      int[] stopped = new TextGenerator(TextGenerator.of(m), 128, stop).generate(prompts[0], NEW_TOKENS,
          TextGenerator.Sampling.greedy(), t -> { });
      assertArrayEquals(Arrays.copyOf(expected[0], Arrays.stream(expected[0]).boxed().toList().indexOf(stop) + 1),
          stopped);
      // Beyond the model's positions the context slides: still one token per step, no failure.
      int[] longPrompt = new Random(3).ints(126, 0, 50257).toArray();
      assertEquals(6, g.generate(longPrompt, 6, TextGenerator.Sampling.greedy(), t -> { }).length);
    }
  }

  @Test
  void theKLikeliestTokensAreTheHeadOfTheFullOrderTiesIncluded() {
    Random r = new Random(5);
    float[] logits = new float[5000];
    for (int i = 0; i < logits.length; i++) {
      logits[i] = r.nextInt(40) / 4f; // many ties
    }
    Integer[] all = java.util.stream.IntStream.range(0, logits.length).boxed().sorted((a, b) ->
        logits[a] != logits[b] ? Float.compare(logits[b], logits[a]) : Integer.compare(a, b)).toArray(Integer[]::new);
    for (int k : new int[] {1, 2, 7, 40, 1000, 5000}) {
      assertArrayEquals(Arrays.copyOf(all, k), TextGenerator.likeliest(logits, k), "k = " + k);
    }
  }

  @Test
  void samplingIsSeededAndRespectsTopK() {
    float[] logits = new float[50];
    for (int i = 0; i < logits.length; i++) {
      logits[i] = (float) Math.sin(i * 1.7);
    }
    TextGenerator.Sampling s = new TextGenerator.Sampling(1.0, 5, 1.0, 42);
    int[] top5 = java.util.stream.IntStream.range(0, 50).boxed()
        .sorted((a, b) -> Float.compare(logits[b], logits[a])).limit(5).mapToInt(Integer::intValue).toArray();
    Random r1 = new Random(42);
    Random r2 = new Random(42);
    java.util.Set<Integer> seen = new java.util.HashSet<>();
    for (int i = 0; i < 500; i++) {
      int a = TextGenerator.sample(logits, s, r1);
      assertEquals(a, TextGenerator.sample(logits, s, r2));
      assertTrue(Arrays.stream(top5).anyMatch(t -> t == a), "token " + a + " is outside the top 5");
      seen.add(a);
    }
    assertEquals(5, seen.size());
    // top-p that the likeliest token alone exceeds keeps it alone.
    float[] peaked = logits.clone();
    peaked[7] = 50;
    assertEquals(7, TextGenerator.sample(peaked, new TextGenerator.Sampling(1.0, 0, 0.5, 1), new Random(1)));
    // A high temperature spreads the choices over more tokens than a low one.
    java.util.Set<Integer> hot = new java.util.HashSet<>();
    java.util.Set<Integer> cold = new java.util.HashSet<>();
    Random r = new Random(7);
    for (int i = 0; i < 300; i++) {
      hot.add(TextGenerator.sample(logits, new TextGenerator.Sampling(5.0, 0, 1.0, 0), r));
      cold.add(TextGenerator.sample(logits, new TextGenerator.Sampling(0.05, 0, 1.0, 0), r));
    }
    assertTrue(hot.size() > cold.size() + 10, hot.size() + " vs " + cold.size());
    assertNotEquals(0, hot.size());
    assertThrows(IllegalArgumentException.class, () -> new TextGenerator.Sampling(-1, 0, 1, 0));
    assertThrows(IllegalArgumentException.class, () -> new TextGenerator.Sampling(1, 0, 0, 0));
  }
}
