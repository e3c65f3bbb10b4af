package org.finetune.bench;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;
import org.finetune.data.ImageDataset;
import org.finetune.data.ImageFolder;
import org.finetune.data.ImageOps;
import org.finetune.model.KerasSavedModel;
import org.finetune.testing.Fixture;
import org.finetune.testing.Images;
import org.finetune.train.FeatureCache;
import org.finetune.train.Fit;
import org.finetune.train.HeadSpec;
import org.finetune.train.OptimizerSpec;
import org.finetune.train.Selector;
import org.finetune.train.Stage;
import org.finetune.train.Trainer;
import org.finetune.train.TrainingPlan;

/**
 * Head-only training on images against training on cached features, full-size models: prints
 * the wall time of each and the speed-up. Run with scripts/benchmark FeatureCacheBenchmark
 * [EPOCHS] [IMAGES_PER_CLASS].
 */
public final class FeatureCacheBenchmark {
  private FeatureCacheBenchmark() {}

  public static void main(String[] args) throws Exception {
    int epochs = args.length > 0 ? Integer.parseInt(args[0]) : 5;
    int perClass = args.length > 1 ? Integer.parseInt(args[1]) : 32;
    Path tmp = Files.createTempDirectory("finetune-bench-");
    for (String[] model : List.of(new String[] {"generated/vgg16/keras3_export", "64", "caffe"},
        new String[] {"generated/inception_v3/keras3_export", "75", "tf"})) {
      int size = Integer.parseInt(model[1]);
      Path data = Images.folder(tmp.resolve("data" + size), List.of("a", "b", "c", "d"), perClass, size, 1);
      ImageFolder folder = ImageFolder.scan(data);
      ImageDataset.Options options = ImageDataset.Options.of(size, size, ImageOps.Preprocess.byName(model[2]), 32);
      TrainingPlan plan = TrainingPlan.builder().head(HeadSpec.classifier(4)).stage(Stage.of(Selector.parse("head")))
          .optimizer(OptimizerSpec.Adam.defaults()).build();
      double plain;
      double cached;
      try (ImageDataset d = ImageDataset.open(folder.items(), options);
          KerasSavedModel m = KerasSavedModel.open(Fixture.of(model[0]).model()); Trainer t = new Trainer(m, plan)) {
        String input = m.info().selectedSignature().inputs().get(0).key();
        Fit.run(t, Fit.images(d, input), Optional.empty(), new Fit.Options(1, OptionalInt.empty()), List.of(),
            Fit.Start.BEGINNING);
        long t0 = System.nanoTime();
        Fit.run(t, Fit.images(d, input), Optional.empty(), new Fit.Options(epochs + 1, OptionalInt.empty()), List.of(),
            new Fit.Start(1, 0));
        plain = (System.nanoTime() - t0) / 1e9;
      }
      try (ImageDataset d = ImageDataset.open(folder.items(), options);
          KerasSavedModel m = KerasSavedModel.open(Fixture.of(model[0]).model()); Trainer t = new Trainer(m, plan)) {
        String input = m.info().selectedSignature().inputs().get(0).key();
        t.useStage(0);
        long t0 = System.nanoTime();
        try (FeatureCache cache = FeatureCache.build(t, d, input, 1L << 30)) {
          Fit.run(t, cache, Optional.empty(), new Fit.Options(epochs, OptionalInt.empty()), List.of(), Fit.Start.BEGINNING);
        }
        cached = (System.nanoTime() - t0) / 1e9;
      }
      System.out.printf("feature cache %-38s %d images, %d epochs: images %.2f s, cached features %.2f s"
          + " (features computed once included): %.1fx%n", model[0], folder.items().size(), epochs, plain, cached,
          plain / cached);
    }
  }
}
