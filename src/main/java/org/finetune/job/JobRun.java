package org.finetune.job;

import com.google.gson.GsonBuilder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;
import java.util.Set;
import java.util.TreeSet;
import org.finetune.data.ArrayDataset;
import org.finetune.data.ClipFolder;
import org.finetune.data.ImageDataset;
import org.finetune.data.ImageFolder;
import org.finetune.data.ImageOps;
import org.finetune.data.NpyArray;
import org.finetune.data.TextCorpus;
import org.finetune.data.TextDataset;
import org.finetune.export.Checkpoint;
import org.finetune.export.CheckpointCallback;
import org.finetune.export.DirectoryDigest;
import org.finetune.export.ExportOptions;
import org.finetune.export.ExportResult;
import org.finetune.export.Exporter;
import org.finetune.export.Provenance;
import org.finetune.export.TrainingPosition;
import org.finetune.hint.Setting;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.SignatureInfo;
import org.finetune.savedmodel.TensorSpec;
import org.finetune.text.Gpt2Tokenizer;
import org.finetune.train.CsvLogger;
import org.finetune.train.CurvesPlot;
import org.finetune.train.EarlyStopping;
import org.finetune.train.FeatureCache;
import org.finetune.train.Fit;
import org.finetune.train.HeadSpec;
import org.finetune.train.LossChoice;
import org.finetune.train.LossSpec;
import org.finetune.train.PlanJson;
import org.finetune.train.ReduceLrOnPlateau;
import org.finetune.train.TensorBoardLogger;
import org.finetune.train.Trainer;
import org.finetune.train.TrainingPlan;

/** One run of a {@link FineTuneJob}: the same steps for images, clips, text and arrays, each with its data. */
final class JobRun {
  /** In-memory bound of the feature cache before it spills to a mapped file. */
  private static final long CACHE_BYTES = 1L << 30;

  private final FineTuneJob job;
  private final KerasSavedModel model;
  private final JobListener listener;

  JobRun(FineTuneJob job, KerasSavedModel model) {
    this.job = job;
    this.model = model;
    this.listener = job.listener;
  }

  FineTuneResult run() {
    job.exportTo.ifPresent(out -> {
      if (Files.exists(out) && !job.overwrite) {
        throw new JobException("the output " + out + " exists", Setting.EXPORT,
            "choose another or let the job overwrite it");
      }
    });
    if (job.data instanceof JobData.Arrays arrays) {
      return new ArrayRun().run(arrays);
    }
    return job.data instanceof JobData.Text text ? text(text) : images();
  }

  /**
   * Labelled examples split for training and validation: images (one item each) or clips
   * ({@code frames} consecutive items each).
   */
  private record Examples(Path root, List<String> classes, List<ImageFolder.Item> train,
      List<ImageFolder.Item> validation, int frames) {
    int trainExamples() {
      return train.size() / Math.max(1, frames);
    }

    int valExamples() {
      return validation.size() / Math.max(1, frames);
    }

    ImageDataset open(List<ImageFolder.Item> items, ImageDataset.Options options) {
      if (frames == 0) {
        return ImageDataset.open(items, options);
      }
      try {
        return ImageDataset.clips(items, frames, options);
      } catch (IllegalArgumentException e) {
        throw new JobException(e.getMessage(), Setting.AUGMENTATION, "train clips without augmentation");
      }
    }
  }

  private Examples examples(double valSplit) {
    try {
      if (job.data instanceof JobData.Clips clips) {
        ClipFolder folder = ClipFolder.scan(clips.root());
        ClipFolder.Split split = folder.split(valSplit, job.seed);
        return new Examples(folder.root(), folder.classes(), ClipFolder.frames(split.train(), clips.frames()),
            ClipFolder.frames(split.validation(), clips.frames()), clips.frames());
      }
      ImageFolder folder = ImageFolder.scan(((JobData.Images) job.data).root());
      ImageFolder.Split split = folder.split(valSplit, job.seed);
      return new Examples(folder.root(), folder.classes(), split.train(), split.validation(), 0);
    } catch (JobException e) {
      throw e;
    } catch (IllegalArgumentException e) {
      throw JobException.of(Setting.DATA, e);
    }
  }

  private FineTuneResult images() {
    Examples data = examples(job.validationSplit.orElse(0.2));
    int batchSize = job.batchSize.orElse(32);
    Optional<Checkpoint.Info> resume = resume();
    ImageInput image = ImageInput.of(model, job.imageSize);
    ModelFamily family = ModelFamily.detect(model);
    ImageOps.Preprocess preprocess = job.preprocess.or(family::preprocess).orElse(ImageOps.Preprocess.NONE);
    long totalSteps = (long) job.epochs * ((data.trainExamples() + batchSize - 1) / batchSize);
    TrainingPlan plan = resume.map(Checkpoint.Info::plan).or(() -> job.plan)
        .orElseGet(() -> plan(head(family, data), family.groups(), LossSpec.SPARSE_CATEGORICAL_CROSSENTROPY, totalSteps));
    OptionalInt outputs = ImageInput.outputClasses(model);
    if (plan.head().isEmpty() && outputs.isPresent() && data.classes().size() > outputs.getAsInt()) {
      throw new JobException(model.info().dir() + " scores " + outputs.getAsInt() + " classes but " + data.root()
          + " has " + data.classes().size() + " class folders, so labels would run past its output",
          Setting.HEAD, "put a new classifier with one output per class folder on it");
    }
    ImageDataset.Options options;
    try {
      options = ImageDataset.Options.of(image.height(), image.width(), preprocess, batchSize).seeded(job.seed)
          .strictly(job.strict).flipping(job.flip).zooming(job.zoom).brightening(job.brightness);
    } catch (IllegalArgumentException e) {
      throw JobException.of(Setting.AUGMENTATION, e);
    }
    boolean video = data.frames() > 0;
    try (ImageDataset train = data.open(data.train(), options);
        ImageDataset val = data.validation().isEmpty() ? null
            : data.open(data.validation(), options.shuffled(false).flipping(false).zooming(0).brightening(0));
        Trainer trainer = new Trainer(model, plan)) {
      // Said once the data has been read, so that a bad image (when strict) comes before anything else.
      listener.message(String.format(Locale.ROOT, "Model: %s (%s, input %s %dx%d, preprocessing %s)",
          model.info().dir(), family.name(), image.input(), image.height(), image.width(),
          preprocess.name().toLowerCase(Locale.ROOT)));
      if (job.preprocess.isEmpty() && family.preprocess().isEmpty()) {
        listener.warning("the model is of no known family, so its images are fed as decoded (0-255 RGB, no"
            + " preprocessing); set the preprocessing it was trained with if it expects another");
      }
      listener.message(String.format(Locale.ROOT, "Data: %s: %d classes (%s), %d %s for training, %d for validation",
          data.root(), data.classes().size(), String.join(", ", data.classes()), data.trainExamples(),
          video ? "clips of " + data.frames() + " frames" : "images", data.valExamples()));
      listener.message("Plan: " + new GsonBuilder().disableHtmlEscaping().create().toJson(PlanJson.toJson(plan)));
      Set<Path> skipped = new TreeSet<>(train.skipped());
      if (val != null) {
        skipped.addAll(val.skipped());
      }
      if (!skipped.isEmpty()) {
        listener.warning("skipped " + skipped.size() + " unreadable image(s): " + String.join(", ",
            skipped.stream().map(Path::toString).toList()));
      }
      String monitor = val != null ? "val_loss" : "loss";
      Loop loop = loop(trainer, resume, monitor, plan);
      // The new head alone trains and nothing is augmented: the base's features never change, so
      // they are computed once and the runtime runs only the head.
      boolean cache = plan.stages().size() == 1 && trainer.headOnly(0) && !options.augmented() && job.featureCache;
      List<Fit.Epoch> history;
      if (cache) {
        listener.message("Caching the base's features: only the new head trains and nothing is augmented");
        try (FeatureCache trainCache = FeatureCache.build(trainer, train, image.input(), CACHE_BYTES);
            FeatureCache valCache = val == null ? null : FeatureCache.build(trainer, val, image.input(), CACHE_BYTES)) {
          history = loop.fit(trainCache, Optional.ofNullable(valCache));
        }
      } else {
        history = loop.fit(Fit.images(train, image.input()),
            Optional.ofNullable(val).map(v -> Fit.images(v, image.input())));
      }
      Provenance.Task task = Provenance.Task.classifier(job.data.task(), data.classes(), preprocess,
          video ? OptionalInt.of(data.frames()) : OptionalInt.empty(), data.root());
      return loop.finish(history, task, DirectoryDigest.of(data.root()));
    }
  }

  /** The new head the job asks for (one output per class); for clips always one, over the frames. */
  private Optional<HeadSpec> head(ModelFamily family, Examples data) {
    if (!job.newHead && data.frames() == 0) {
      return Optional.empty();
    }
    HeadSpec spec = HeadSpec.classifier(data.classes().size()).seed(job.seed);
    Optional<String> at = job.featuresAt.or(family::featureLayer);
    if (at.isPresent()) {
      spec = spec.at(at.get());
    } else {
      listener.warning("the model is of no known family, so the new head goes on its signature output; name the"
          + " layer whose output it should take if that is not its features");
    }
    if (job.hiddenUnits.isPresent()) {
      spec = spec.hidden(job.hiddenUnits.getAsInt(), job.dropout);
    }
    return Optional.of(data.frames() > 0 ? spec.clips(data.frames(), job.temporal) : spec);
  }

  private TrainingPlan plan(Optional<HeadSpec> head, List<String> groups, LossSpec loss, long totalSteps) {
    try {
      return JobPlans.plan(job, head, groups, loss, totalSteps);
    } catch (JobException e) {
      throw e;
    } catch (IllegalArgumentException e) {
      throw JobException.of(Setting.PLAN, e);
    }
  }

  private FineTuneResult text(JobData.Text text) {
    TextCorpus train;
    Optional<TextCorpus> validation;
    try {
      TextCorpus all = TextCorpus.read(text.train(), job.strict);
      if (!text.validation().isEmpty()) {
        if (job.validationSplit.isPresent()) {
          throw new JobException("validation text was given and a share of the documents to hold out",
              Setting.VALIDATION, "give one of them");
        }
        train = all;
        validation = Optional.of(TextCorpus.read(text.validation(), job.strict));
      } else {
        double split = job.validationSplit.orElse(0.1);
        if (split == 0) {
          train = all;
          validation = Optional.empty();
        } else {
          TextCorpus[] parts = all.split(split, job.seed);
          train = parts[0];
          validation = Optional.of(parts[1]);
        }
      }
    } catch (JobException e) {
      throw e;
    } catch (IllegalArgumentException e) {
      throw JobException.of(Setting.DATA, e);
    }
    train.warnings().forEach(listener::warning);
    validation.ifPresent(v -> v.warnings().forEach(listener::warning));
    Optional<Checkpoint.Info> resume = resume();
    LanguageModelInput lm = LanguageModelInput.of(model);
    ModelFamily family = ModelFamily.detect(model);
    int length = lm.blockLength(job.sequenceLength);
    TextDataset.Options options = new TextDataset.Options(length, job.batchSize.orElse(8), true, job.seed);
    TextDataset trainData = textData(Gpt2Tokenizer.get().encode(train), options);
    Optional<TextDataset> valData = validation.map(v -> textData(Gpt2Tokenizer.get().encode(v), options.shuffled(false)));
    long totalSteps = (long) job.epochs * trainData.batchesPerEpoch();
    TrainingPlan plan = resume.map(Checkpoint.Info::plan)
        .orElseGet(() -> plan(Optional.empty(), family.groups(), LossSpec.CAUSAL_LM, totalSteps));
    if (plan.loss() != LossSpec.CAUSAL_LM) {
      throw new JobException("a causal language model trains with the causal_lm loss; the plan asks for "
          + plan.loss().kerasName(), Setting.PLAN, "");
    }
    listener.message(String.format(Locale.ROOT, "Model: %s (causal LM, %d transformer layers, %d positions)",
        model.info().dir(), lm.transformerLayers(), lm.positions()));
    listener.message(String.format(Locale.ROOT, "Data: %d documents, %d tokens for training (%d blocks of %d)%s",
        train.documents().size(), trainData.tokens(), trainData.blocks(), length,
        valData.map(v -> String.format(Locale.ROOT, "; %d documents, %d tokens for validation",
            validation.get().documents().size(), v.tokens())).orElse("; no validation")));
    listener.message("Plan: " + new GsonBuilder().disableHtmlEscaping().create().toJson(PlanJson.toJson(plan)));
    try (Trainer trainer = new Trainer(model, plan)) {
      Loop loop = loop(trainer, resume, valData.isPresent() ? "val_loss" : "loss", plan);
      long began = System.nanoTime();
      List<Fit.Epoch> history = loop.fit(Fit.tokens(trainData), valData.map(Fit::tokens));
      double seconds = (System.nanoTime() - began) / 1e9;
      long trained = history.size() * trainData.predictions();
      if (!history.isEmpty()) {
        listener.message(String.format(Locale.ROOT, "Trained on %d tokens in %.1f s (%.0f tokens/s, validation"
            + " included)", trained, seconds, trained / seconds));
      }
      return loop.finish(history, Provenance.Task.causalLm(length, "gpt2 (r50k_base)", text.train()), train.digest());
    }
  }

  private static TextDataset textData(List<int[]> docs, TextDataset.Options options) {
    try {
      return TextDataset.of(docs, Gpt2Tokenizer.END_OF_TEXT, options);
    } catch (IllegalArgumentException e) {
      throw JobException.of(Setting.DATA, e);
    }
  }

  /** A model trained on arrays, as Keras's {@code fit(x, y)}. */
  private final class ArrayRun {
    FineTuneResult run(JobData.Arrays data) {
      SignatureInfo sig = model.info().selectedSignature();
      ArrayExamples examples = ArrayExamples.read(data, sig);
      Optional<ArrayExamples> validation = data.validation().map(v -> ArrayExamples.read(v, sig));
      double split = job.validationSplit.orElse(0);
      if (validation.isPresent() && split > 0) {
        throw new JobException("validation examples were given and a share of the examples to hold out",
            Setting.VALIDATION, "give one of them");
      }
      ArrayDataset.Options options = new ArrayDataset.Options(job.batchSize.orElse(32), job.shuffle, job.seed);
      ArrayDataset train;
      Optional<ArrayDataset> val;
      try {
        train = ArrayDataset.of(examples.inputs(), examples.targets(), options);
        val = validation.map(v -> ArrayDataset.of(v.inputs(), v.targets(),
            new ArrayDataset.Options(options.batchSize(), false, job.seed)));
        if (split > 0) {
          ArrayDataset[] parts = train.split(split);
          train = parts[0];
          val = Optional.of(parts[1]);
        }
      } catch (IllegalArgumentException e) {
        throw JobException.of(split > 0 ? Setting.VALIDATION : Setting.DATA, e);
      }
      listener.message(String.format(Locale.ROOT, "Model: %s (signature %s: inputs %s; outputs %s)", model.info().dir(),
          sig.name(), specs(sig.inputs()), specs(sig.outputs())));
      listener.message(String.format(Locale.ROOT, "Data: %s: %d examples (%s); %d for training, %d for validation%s",
          data.inputs(), examples.examples(), examples.describe(), train.examples(),
          val.map(ArrayDataset::examples).orElse(0), split > 0 ? " (the last " + Math.round(split * 100)
              + "%, as Keras's validation_split)" : ""));
      Optional<Checkpoint.Info> resume = resume();
      ModelFamily family = ModelFamily.detect(model);
      boolean integer = !examples.targets().dtype().startsWith("float");
      List<NpyArray> allTargets = new ArrayList<>();
      allTargets.add(examples.targets());
      validation.ifPresent(v -> allTargets.add(v.targets()));
      Optional<HeadSpec> head = job.newHead ? Optional.of(arrayHead(family, integer, allTargets)) : Optional.empty();
      TensorSpec output = head.isPresent() ? null : onlyOutput(sig);
      LossSpec loss = resume.map(r -> r.plan().loss()).or(() -> job.plan.map(TrainingPlan::loss))
          .orElseGet(() -> loss(sig, head, output, integer, examples.targets()));
      long outputWidth = head.map(h -> (long) h.classes())
          .orElseGet(() -> output.shape().isEmpty() ? -1L : output.shape().get(output.shape().size() - 1));
      checkTargets(allTargets, loss, outputWidth);
      long totalSteps = (long) job.epochs * train.batchesPerEpoch();
      TrainingPlan plan = resume.map(Checkpoint.Info::plan).or(() -> job.plan)
          .orElseGet(() -> plan(head, family.groups(), loss, totalSteps));
      listener.message("Plan: " + new GsonBuilder().disableHtmlEscaping().create().toJson(PlanJson.toJson(plan)));
      try (Trainer trainer = new Trainer(model, plan)) {
        Loop loop = loop(trainer, resume, val.isPresent() ? "val_loss" : "loss", plan);
        List<Fit.Epoch> history = loop.fit(Fit.arrays(train), val.map(Fit::arrays));
        return loop.finish(history, Provenance.Task.arrays(data.inputs()), ArrayExamples.digest(data));
      }
    }

    private TensorSpec onlyOutput(SignatureInfo sig) {
      if (sig.outputs().size() != 1) {
        throw new JobException("signature " + sig.name() + " has outputs " + sig.outputs().stream()
            .map(TensorSpec::key).toList() + ", and a job trains one output", Setting.HEAD,
            "put a new head on the layer to train from, or export the model with the one output to train");
      }
      return sig.outputs().get(0);
    }

    /** The new head: outputs and activation as set, or read from the targets and stated. */
    private HeadSpec arrayHead(ModelFamily family, boolean integer, List<NpyArray> targets) {
      HeadSpec.Activation activation = job.headActivation.orElseGet(() -> job.loss.map(l -> switch (l) {
        case SPARSE_CATEGORICAL_CROSSENTROPY, CATEGORICAL_CROSSENTROPY -> HeadSpec.Activation.SOFTMAX;
        case BINARY_CROSSENTROPY -> HeadSpec.Activation.SIGMOID;
        default -> HeadSpec.Activation.LINEAR;
      }).orElse(integer ? HeadSpec.Activation.SOFTMAX : HeadSpec.Activation.LINEAR));
      int units;
      String why;
      if (job.headUnits.isPresent()) {
        units = job.headUnits.getAsInt();
        why = "as set";
      } else if (integer && targets.get(0).shape().length == 1 && activation == HeadSpec.Activation.SOFTMAX) {
        long max = 0;
        for (NpyArray t : targets) {
          for (double v : t.toDoubles()) {
            max = Math.max(max, (long) v);
          }
        }
        units = Math.toIntExact(max + 1);
        why = "integer labels 0.." + max;
      } else {
        long[] shape = targets.get(0).shape();
        long width = 1;
        for (int i = 1; i < shape.length; i++) {
          width *= shape[i];
        }
        units = Math.toIntExact(width);
        why = "one per target value of an example";
      }
      HeadSpec spec = new HeadSpec(Optional.empty(), HeadSpec.Pooling.AVERAGE, 0, 0, units, activation, job.seed);
      Optional<String> at = job.featuresAt.or(family::featureLayer);
      if (at.isPresent()) {
        spec = spec.at(at.get());
      } else {
        listener.warning("the model is of no known family, so the new head goes on its signature output; name the"
            + " layer whose output it should take if that is not its features");
      }
      if (job.hiddenUnits.isPresent()) {
        spec = spec.hidden(job.hiddenUnits.getAsInt(), job.dropout);
      }
      listener.message(String.format(Locale.ROOT, "Head: %d %s output(s) (%s)", units,
          activation.kerasName(), why));
      return spec;
    }

    /** The loss as set, or read from the targets and the output's activation and stated. */
    private LossSpec loss(SignatureInfo sig, Optional<HeadSpec> head, TensorSpec output, boolean integer,
        NpyArray targets) {
      if (job.loss.isPresent()) {
        return job.loss.get();
      }
      Optional<String> activation;
      int outputRank;
      if (head.isPresent()) {
        activation = switch (head.get().activation()) {
          case SOFTMAX -> Optional.of("Softmax");
          case SIGMOID -> Optional.of("Sigmoid");
          case LINEAR -> Optional.empty();
        };
        outputRank = 2;
      } else {
        activation = LossChoice.finalActivation(model, sig.name(), output.key());
        outputRank = output.shape().size();
      }
      LossChoice choice = LossChoice.infer(integer, targets.shape().length, outputRank, activation).orElseThrow(() ->
          new JobException("the targets (" + targets.dtype() + " " + java.util.Arrays.toString(targets.shape())
              + ") and the output (" + activation.orElse("linear") + ") leave the loss open", Setting.LOSS,
              "name the loss: sparse_categorical_crossentropy for class labels, mean_squared_error for values"));
      listener.message("Loss: " + choice.loss().kerasName() + " (" + choice.reason() + "; name another to change it)");
      return choice.loss();
    }

    private void checkTargets(List<NpyArray> targets, LossSpec loss, long outputWidth) {
      for (NpyArray t : targets) {
        if (loss == LossSpec.SPARSE_CATEGORICAL_CROSSENTROPY) {
          double[] v = t.toDoubles();
          for (int i = 0; i < v.length; i++) {
            if (v[i] < 0 || v[i] != Math.rint(v[i]) || (outputWidth > 0 && v[i] >= outputWidth)) {
              throw new JobException("target " + i + " is " + v[i] + ", not a class index in [0, " + outputWidth
                  + ")", Setting.DATA, "give labels 0 to " + (outputWidth - 1) + ", one per output");
            }
          }
        } else if (loss != LossSpec.CAUSAL_LM && outputWidth > 0) {
          long[] shape = t.shape();
          long width = 1;
          for (int i = 1; i < shape.length; i++) {
            width *= shape[i];
          }
          if (width != outputWidth) {
            throw new JobException("each example has " + width + " target value(s) and the output has " + outputWidth,
                Setting.DATA, "give " + outputWidth + " target value(s) per example");
          }
        }
      }
    }

    private String specs(List<TensorSpec> specs) {
      return String.join(", ", specs.stream().map(t -> t.key() + " " + t.dtype() + " " + t.shapeText()).toList());
    }
  }

  /** The checkpoint to resume from, refused when it was trained from another model. */
  private Optional<Checkpoint.Info> resume() {
    if (job.resume.isEmpty()) {
      return Optional.empty();
    }
    Checkpoint.Info info;
    try {
      info = Checkpoint.read(job.resume.get());
    } catch (IllegalArgumentException e) {
      throw JobException.of(Setting.RESUME, e);
    }
    Path modelDir = model.info().dir();
    if (!DirectoryDigest.of(modelDir).equals(info.modelDigest())) {
      throw new JobException("the checkpoint " + info.dir() + " was trained from another model than " + modelDir,
          Setting.RESUME, "");
    }
    return Optional.of(info);
  }

  private Loop loop(Trainer trainer, Optional<Checkpoint.Info> resume, String monitor, TrainingPlan plan) {
    Fit.Start start = Fit.Start.BEGINNING;
    if (resume.isPresent()) {
      start = CheckpointCallback.restore(trainer, resume.get());
      listener.message(String.format(Locale.ROOT, "Resuming from %s at epoch %d, batch %d (%d optimizer steps)",
          resume.get().dir(), start.epoch() + 1, start.batch(), trainer.iterations()));
    }
    trainer.warnings().forEach(listener::warning);
    List<Fit.Callback> callbacks = new ArrayList<>();
    callbacks.add(listener);
    job.earlyStopping.ifPresent(p -> callbacks.add(new EarlyStopping(monitor, p, 0, true)));
    job.reduceLr.ifPresent(p -> callbacks.add(new ReduceLrOnPlateau(monitor, 0.5, p, 1e-7)));
    // The history row before the checkpoint: a kill between them leaves a row the resumed run
    // replaces, never a checkpoint past an epoch the history lacks.
    job.history.ifPresent(csv -> callbacks.add(new CsvLogger(csv, resume.isPresent())));
    Optional<TrainingPosition> position = resume.map(TrainingPosition::of);
    job.checkpoints.ifPresent(dir -> callbacks.add(new CheckpointCallback(dir, monitor, job.checkpointEvery)
        .resuming(position)));
    job.tensorBoard.ifPresent(dir -> callbacks.add(new TensorBoardLogger(dir)));
    job.curves.ifPresent(png -> callbacks.add(new CurvesPlot(png)));
    callbacks.addAll(job.callbacks);
    OptionalInt every = job.unfreezeEvery.isPresent() ? job.unfreezeEvery
        : plan.stages().size() > 1 ? OptionalInt.of(1) : OptionalInt.empty();
    return new Loop(trainer, new Fit.Options(job.epochs, every).withNonFinite(job.onNonFinite), callbacks, start,
        monitor, position.map(TrainingPosition::history).orElse(List.of()));
  }

  /** The training loop as the job set it up, and what follows it. */
  private final class Loop {
    private final Trainer trainer;
    private final Fit.Options options;
    private final List<Fit.Callback> callbacks;
    private final Fit.Start start;
    private final String monitor;
    private final List<Fit.Epoch> earlier;

    Loop(Trainer trainer, Fit.Options options, List<Fit.Callback> callbacks, Fit.Start start, String monitor,
        List<Fit.Epoch> earlier) {
      this.trainer = trainer;
      this.options = options;
      this.callbacks = callbacks;
      this.start = start;
      this.monitor = monitor;
      this.earlier = earlier;
    }

    List<Fit.Epoch> fit(Fit.BatchSource train, Optional<? extends Fit.BatchSource> validation) {
      return Fit.run(trainer, train, validation.map(v -> (Fit.BatchSource) v), options, callbacks, start);
    }

    /** The best epoch, and the export with its provenance. */
    FineTuneResult finish(List<Fit.Epoch> history, Provenance.Task task, String dataDigest) {
      OptionalInt bestEpoch = OptionalInt.empty();
      double best = Double.NaN;
      for (Fit.Epoch e : history) {
        Double v = e.logs().get(monitor);
        if (v != null && EarlyStopping.improved(monitor, v, best, 0)) {
          best = v;
          bestEpoch = OptionalInt.of(e.epoch());
        }
      }
      boolean stoppedEarly = job.earlyStopping.isPresent() && history.size() < job.epochs - start.epoch();
      Optional<ExportResult> export = job.exportTo.map(out -> {
        Fit.Epoch last = history.isEmpty() ? null : history.get(history.size() - 1);
        ExportOptions eo = ExportOptions.defaults().overwriting(job.overwrite)
            .trainingRecord(start.epoch() + history.size(), last == null ? java.util.Map.of() : last.logs(),
                Optional.of(dataDigest)).withExtra(task.toJson());
        try {
          return Exporter.export(trainer, out, eo);
        } catch (IllegalArgumentException e) {
          throw JobException.of(Setting.EXPORT, e);
        }
      });
      return new FineTuneResult(history, earlier, start.epoch(), job.epochs, monitor, bestEpoch,
          bestEpoch.isPresent() ? OptionalDouble.of(best) : OptionalDouble.empty(), stoppedEarly, trainer.plan(),
          export);
    }
  }
}
