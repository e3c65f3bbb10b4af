package org.finetune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.finetune.model.KerasSavedModel;
import org.finetune.testing.Fixture;
import org.finetune.testing.Images;
import org.finetune.testing.TreeDigest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code finetune train} from an image folder to an export, and its refusals. */
class TrainCommandTest {
  @TempDir
  Path tmp;

  @Test
  void trainsAHeadWithGradualUnfreezingResumesAndExports() throws IOException {
    Path data = Images.folder(tmp.resolve("data"), List.of("cows", "horses", "humans"), 6, 32, 4);
    List<Path> bad = Images.corrupt(data, List.of("cows", "horses", "humans"));
    Path model = Fixture.of("vgg16_small/keras3_export").model();
    String before = TreeDigest.of(model);
    Path out = tmp.resolve("export");
    Path checkpoints = tmp.resolve("checkpoints");
    CliRun run = CliRun.of("train", model.toString(), "--data", data.toString(), "--head", "--features-at",
        "block1_pool", "--hidden", "8", "--dropout", "0.2", "--unfreeze", "gradual:1", "--groups", "block1",
        "--epochs", "2", "--batch-size", "4", "--lr", "0.01", "--checkpoints", checkpoints.toString(), "--history",
        tmp.resolve("history.csv").toString(), "--out", out.toString());
    assertEquals(ExitCode.OK, run.exit(), run.err() + run.out());
    assertTrue(run.out().contains("VGG16") && run.out().contains("preprocessing caffe"), run.out());
    assertTrue(run.out().contains("Epoch 2/2"), run.out());
    assertTrue(run.out().contains("Exported to"), run.out());
    assertTrue(run.err().contains("skipped " + bad.size() + " unreadable image(s)"), run.err());
    for (Path b : bad) {
      assertTrue(run.err().contains(b.toString()), b + " named in: " + run.err());
    }
    try (KerasSavedModel exported = KerasSavedModel.open(out)) {
      assertEquals(3L, exported.info().selectedSignature().outputs().get(0).shape().get(1));
    }
    assertEquals(3, Files.readAllLines(tmp.resolve("history.csv")).size());

    // The export evaluates on the folder and classifies images by the folders' names.
    CliRun evaluate = CliRun.of("evaluate", out.toString(), "--data", data.toString(), "--confusion",
        tmp.resolve("confusion.png").toString());
    assertEquals(ExitCode.OK, evaluate.exit(), evaluate.err());
    assertTrue(evaluate.out().contains("accuracy") && evaluate.out().contains("confusion matrix"), evaluate.out());
    assertTrue(evaluate.out().contains("18 images, 3 classes"), evaluate.out());
    assertTrue(evaluate.err().contains("skipped " + bad.size()), evaluate.err());
    assertTrue(javax.imageio.ImageIO.read(tmp.resolve("confusion.png").toFile()).getWidth() > 100);
    CliRun predict = CliRun.of("predict", out.toString(), "--images", data.resolve("horses").toString(), "--format",
        "json", "--top", "2");
    assertEquals(ExitCode.OK, predict.exit(), predict.err());
    com.google.gson.JsonArray rows = com.google.gson.JsonParser.parseString(predict.out()).getAsJsonArray();
    assertEquals(6, rows.size(), "six readable horses");
    String first = rows.get(0).getAsJsonObject().getAsJsonArray("top").get(0).getAsJsonObject().get("class").getAsString();
    assertTrue(List.of("cows", "horses", "humans").contains(first), first);

    // An export is a model like any other: it trains again (its graph is flattened a second time).
    CliRun again = CliRun.of("train", out.toString(), "--data", data.toString(), "--epochs", "1", "--batch-size", "4",
        "--preprocess", "caffe", "--val-split", "0");
    assertEquals(ExitCode.OK, again.exit(), again.err() + again.out());

    // Resuming a finished run has nothing left to do; a longer run continues from the checkpoint.
    CliRun more = CliRun.of("train", model.toString(), "--data", data.toString(), "--resume",
        checkpoints.resolve("last").toString(), "--epochs", "3", "--batch-size", "4", "--out",
        tmp.resolve("export3").toString());
    assertEquals(ExitCode.OK, more.exit(), more.err() + more.out());
    assertTrue(more.out().contains("Resuming from") && more.out().contains("Epoch 3/3"), more.out());
    assertEquals(before, TreeDigest.of(model), "the base model is only read");
  }

  @Test
  void refusesWhatCannotTrain() throws IOException {
    Path model = Fixture.of("vgg16_small/keras3_export").model();
    Path one = Images.folder(tmp.resolve("one"), List.of("cows"), 2, 8, 1);
    CliRun single = CliRun.of("train", model.toString(), "--data", one.toString());
    assertEquals(ExitCode.BAD_INPUT, single.exit());
    assertTrue(single.err().contains("single class folder"), single.err());
    Path data = Images.folder(tmp.resolve("data"), List.of("a", "b"), 2, 8, 1);
    CliRun noData = CliRun.of("train", model.toString());
    assertEquals(ExitCode.BAD_INPUT, noData.exit());
    assertTrue(noData.err().contains("--data DIR is required"), noData.err());
    CliRun badUnfreeze = CliRun.of("train", model.toString(), "--data", data.toString(), "--val-split", "0", "--head",
        "--unfreeze", "slowly");
    assertEquals(ExitCode.BAD_INPUT, badUnfreeze.exit());
    assertTrue(badUnfreeze.err().contains("gradual:K"), badUnfreeze.err());
    CliRun badSchedule = CliRun.of("train", model.toString(), "--data", data.toString(), "--val-split", "0",
        "--schedule", "wavy");
    assertEquals(ExitCode.BAD_INPUT, badSchedule.exit());
    assertTrue(badSchedule.err().contains("constant, cosine or slanted"), badSchedule.err());
    CliRun cosine = CliRun.of("train", model.toString(), "--data", data.toString(), "--val-split", "0", "--head",
        "--features-at", "block1_pool", "--schedule", "cosine", "--reduce-lr", "1", "--epochs", "2", "--batch-size", "2");
    assertEquals(ExitCode.OK, cosine.exit(), cosine.err() + cosine.out());
    assertTrue(cosine.out().contains("\"cosine_warmup\""), cosine.out());
    Files.createDirectories(tmp.resolve("taken"));
    CliRun taken = CliRun.of("train", model.toString(), "--data", data.toString(), "--val-split", "0", "--out",
        tmp.resolve("taken").toString());
    assertEquals(ExitCode.BAD_INPUT, taken.exit());
    assertTrue(taken.err().contains("exists"), taken.err());
  }
}
