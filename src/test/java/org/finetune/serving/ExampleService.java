package org.finetune.serving;

import com.google.gson.Gson;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.finetune.data.NpyArray;
import org.finetune.job.FineTuneJob;
import org.finetune.job.JobData;
import org.finetune.model.KerasSavedModel;

/**
 * What a JVM service embedding finetune looks like: the JDK's HTTP server with
 * {@code POST /predict} (a JSON {@code {"shape": [...], "data": [...]}} image batch in, the
 * outputs and the answering model out) and {@code POST /finetune} (fine-tunes a new head on an
 * image folder with the library's {@link FineTuneJob}, exports it, and swaps the predictor to it while predictions go
 * on).
 */
final class ExampleService implements AutoCloseable {
  private final HttpServer server;
  private final ExecutorService threads;
  private final Predictor predictor;
  private final Path base;
  private final Path work;

  ExampleService(Path base, Path work) throws IOException {
    this.base = base;
    this.work = work;
    this.predictor = Predictor.open(base);
    this.server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 64);
    this.threads = Executors.newFixedThreadPool(8);
    server.setExecutor(threads);
    server.createContext("/predict", this::predict);
    server.createContext("/finetune", this::finetune);
    server.start();
  }

  int port() {
    return server.getAddress().getPort();
  }

  private void predict(HttpExchange ex) throws IOException {
    try (ex) {
      JsonObject req = JsonParser.parseString(new String(ex.getRequestBody().readAllBytes(), StandardCharsets.UTF_8))
          .getAsJsonObject();
      JsonArray shape = req.getAsJsonArray("shape");
      long[] dims = new long[shape.size()];
      for (int i = 0; i < dims.length; i++) {
        dims[i] = shape.get(i).getAsLong();
      }
      JsonArray data = req.getAsJsonArray("data");
      ByteBuffer b = ByteBuffer.allocate(4 * data.size()).order(ByteOrder.LITTLE_ENDIAN);
      data.forEach(v -> b.putFloat(v.getAsFloat()));
      String input = predictor.inputs().get(0).key();
      Predictor.Prediction p = predictor.predict(Map.of(input, new NpyArray("float32", dims, b.array())));
      JsonObject res = new JsonObject();
      res.addProperty("model", p.model().toString());
      res.addProperty("version", p.version());
      JsonObject outputs = new JsonObject();
      p.outputs().forEach((k, v) -> outputs.add(k, new Gson().toJsonTree(v.toDoubles())));
      res.add("outputs", outputs);
      reply(ex, 200, res.toString());
    } catch (RuntimeException e) {
      reply(ex, 500, "{\"error\": " + new Gson().toJson(String.valueOf(e.getMessage())) + "}");
    }
  }

  /** Fine-tunes a new head on the folder named in the body, exports it and swaps to it. */
  private void finetune(HttpExchange ex) throws IOException {
    try (ex) {
      JsonObject req = JsonParser.parseString(new String(ex.getRequestBody().readAllBytes(), StandardCharsets.UTF_8))
          .getAsJsonObject();
      Path out = work.resolve("export-" + System.nanoTime());
      // The job opens its own copy of the base and closes it: nothing it builds outlives it.
      FineTuneJob.builder(KerasSavedModel.loader(base)).data(JobData.images(Path.of(req.get("data").getAsString())))
          .newHead().epochs(2).batchSize(8).validationSplit(0).exportTo(out).build().run();
      predictor.swap(out);
      reply(ex, 200, "{\"model\": " + new Gson().toJson(out.toString()) + "}");
    } catch (RuntimeException e) {
      reply(ex, 500, "{\"error\": " + new Gson().toJson(String.valueOf(e.getMessage())) + "}");
    }
  }

  private static void reply(HttpExchange ex, int status, String body) throws IOException {
    byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
    ex.getResponseHeaders().set("Content-Type", "application/json");
    ex.sendResponseHeaders(status, bytes.length);
    try (OutputStream os = ex.getResponseBody()) {
      os.write(bytes);
    }
  }

  @Override
  public void close() {
    server.stop(0);
    threads.shutdownNow();
    predictor.close();
  }
}
