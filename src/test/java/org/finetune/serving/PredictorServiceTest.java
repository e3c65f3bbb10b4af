package org.finetune.serving;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;
import org.finetune.data.NpyArray;
import org.finetune.testing.Fixture;
import org.finetune.testing.Images;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The example service over loopback: 4 client threads x 500 predictions while the service
 * fine-tunes a new head and swaps to it. No request may fail; every answer must equal what its
 * model computes alone; every request sent after the swap returned is answered by the new model.
 */
class PredictorServiceTest {
  private static final int CLIENTS = 4;
  private static final int REQUESTS = 500;

  @TempDir
  Path tmp;

  record Answer(long sentAt, long version, int image, double[] output) {}

  private static NpyArray image(int seed) {
    return Images.randomInput(seed);
  }

  private static String body(NpyArray img) {
    JsonObject o = new JsonObject();
    JsonArray shape = new JsonArray();
    for (long d : img.shape()) {
      shape.add(d);
    }
    o.add("shape", shape);
    JsonArray data = new JsonArray();
    for (double v : img.toDoubles()) {
      data.add((float) v);
    }
    o.add("data", data);
    return o.toString();
  }

  @Test
  void fourClientsTimesFiveHundredRequestsAcrossAFineTuneAndSwapWithoutAFailure() throws Exception {
    Path base = Fixture.of("vgg16_small/keras3_export").model();
    Path data = Images.folder(tmp.resolve("images"), List.of("cows", "horses", "humans"), 4, 32, 21);
    int images = 8;
    try (ExampleService service = new ExampleService(base, tmp)) {
      HttpClient http = HttpClient.newHttpClient();
      URI predict = URI.create("http://127.0.0.1:" + service.port() + "/predict");
      String[] bodies = new String[images];
      for (int i = 0; i < images; i++) {
        bodies[i] = body(image(i));
      }
      ConcurrentLinkedQueue<Answer> answers = new ConcurrentLinkedQueue<>();
      ConcurrentLinkedQueue<String> failures = new ConcurrentLinkedQueue<>();
      AtomicLong swappedAt = new AtomicLong(Long.MAX_VALUE);
      CountDownLatch warm = new CountDownLatch(CLIENTS * 20);
      ExecutorService clients = Executors.newFixedThreadPool(CLIENTS + 1);
      List<Future<?>> running = new ArrayList<>();
      for (int c = 0; c < CLIENTS; c++) {
        int client = c;
        running.add(clients.submit(() -> {
          for (int i = 0; i < REQUESTS; i++) {
            int img = (client * REQUESTS + i) % images;
            long sent = System.nanoTime();
            try {
              HttpResponse<String> r = http.send(HttpRequest.newBuilder(predict)
                  .POST(HttpRequest.BodyPublishers.ofString(bodies[img])).build(), HttpResponse.BodyHandlers.ofString());
              if (r.statusCode() != 200) {
                failures.add(r.statusCode() + " " + r.body());
              } else {
                JsonObject o = JsonParser.parseString(r.body()).getAsJsonObject();
                JsonArray out = o.getAsJsonObject("outputs").getAsJsonArray("output_0");
                double[] v = new double[out.size()];
                for (int k = 0; k < v.length; k++) {
                  v[k] = out.get(k).getAsDouble();
                }
                answers.add(new Answer(sent, o.get("version").getAsLong(), img, v));
              }
            } catch (Exception e) {
              failures.add(e.toString());
            }
            warm.countDown();
          }
          return null;
        }));
      }
      warm.await();
      HttpResponse<String> tuned = http.send(HttpRequest.newBuilder(
          URI.create("http://127.0.0.1:" + service.port() + "/finetune"))
          .POST(HttpRequest.BodyPublishers.ofString("{\"data\": \"" + data + "\"}")).build(),
          HttpResponse.BodyHandlers.ofString());
      swappedAt.set(System.nanoTime());
      assertEquals(200, tuned.statusCode(), tuned.body());
      for (Future<?> f : running) {
        f.get();
      }
      clients.shutdown();
      assertEquals(List.of(), List.copyOf(failures), "failed requests");
      assertEquals(CLIENTS * REQUESTS, answers.size());
      Path newModel = Path.of(JsonParser.parseString(tuned.body()).getAsJsonObject().get("model").getAsString());

      // Each model's answers equal what that model computes on its own, single-threaded.
      double[][] before = new double[images][];
      double[][] after = new double[images][];
      try (Predictor old = Predictor.open(base); Predictor fresh = Predictor.open(newModel)) {
        String input = old.inputs().get(0).key();
        for (int i = 0; i < images; i++) {
          before[i] = old.predict(Map.of(input, image(i))).outputs().get("output_0").toDoubles();
          after[i] = fresh.predict(Map.of(input, image(i))).outputs().get("output_0").toDoubles();
        }
      }
      assertTrue(before[0].length != after[0].length, "the new head has 3 outputs: " + after[0].length);
      long v1 = 0;
      long v2 = 0;
      for (Answer a : answers) {
        double[] expected = a.version() == 1 ? before[a.image()] : after[a.image()];
        assertEquals(expected.length, a.output().length);
        for (int k = 0; k < expected.length; k++) {
          assertEquals(expected[k], a.output()[k], 1e-6 * Math.max(1, Math.abs(expected[k])), "version "
              + a.version() + " image " + a.image());
        }
        if (a.sentAt() > swappedAt.get()) {
          assertEquals(2, a.version(), "a request sent after the swap is answered by the new model");
        }
        if (a.version() == 1) {
          v1++;
        } else {
          v2++;
        }
      }
      assertTrue(v1 >= CLIENTS * 20 && v2 > 0, v1 + " answers from the base model, " + v2 + " from the new one");
      System.out.printf("service: %d requests, 0 failed; %d answered by the base model, %d by the fine-tuned one%n",
          answers.size(), v1, v2);
    }
  }

  @Test
  void aSwapToAModelWithOtherInputsIsRefusedAndTheCurrentOneStays() {
    Path base = Fixture.of("vgg16_small/keras3_export").model();
    try (Predictor p = Predictor.open(base)) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> p.swap(Fixture.of("inception_v3_small/keras3_export").model()));
      assertTrue(e.getMessage().contains("a swap keeps the inputs"), e.getMessage());
      assertEquals(base, p.model());
      p.close();
      assertThrows(IllegalStateException.class, () -> p.predict(Map.of()));
    }
  }
}
