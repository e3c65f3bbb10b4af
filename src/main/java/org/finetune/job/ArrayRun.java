package org.finetune.job;

import com.google.gson.GsonBuilder;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import org.finetune.data.ArrayDataset;
import org.finetune.data.NpyArray;
import org.finetune.export.Checkpoint;
import org.finetune.export.Provenance;
import org.finetune.hint.Setting;
import org.finetune.data.ExampleArray;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.SignatureInfo;
import org.finetune.savedmodel.TensorSpec;
import org.finetune.train.Fit;
import org.finetune.train.HeadSpec;
import org.finetune.train.LossChoice;
import org.finetune.train.LossSpec;
import org.finetune.train.OutputLoss;
import org.finetune.train.PlanJson;
import org.finetune.train.Trainer;
import org.finetune.train.TrainingPlan;

/**
 * A job on arrays, as Keras's {@code fit(x, y)}: one output (the signature's, or a new head's)
 * with its loss, or several outputs trained together, each with its loss and weight, as
 * {@code compile(loss={...}, loss_weights={...})}. A loss not named is read from the targets and
 * the output's activation and stated in one line; where they leave it open, the job refuses.
 */
final class ArrayRun {
  private final JobRun run;
  private final FineTuneJob job;
  private final KerasSavedModel model;
  private final JobListener listener;

  ArrayRun(JobRun run, FineTuneJob job, KerasSavedModel model) {
    this.run = run;
    this.job = job;
    this.model = model;
    this.listener = job.settings.listener;
  }

  /**
   * A recurrent loop unrolls only over a length known before the graph runs. When the signature
   * leaves an input's dimensions free (a sequence of any length) and the model loops, the data's
   * example shape fixes them for training, said in one line; validation examples must share it.
   */
  private void fixSequenceLengths(SignatureInfo sig, ArrayExamples examples, Optional<ArrayExamples> validation) {
    Map<String, Long> ops = model.info().opCounts();
    if (!ops.containsKey("While") && !ops.containsKey("StatelessWhile")) {
      return;
    }
    Map<String, long[]> shapes = new java.util.LinkedHashMap<>();
    examples.inputs().forEach((key, a) -> shapes.put(key, java.util.Arrays.copyOfRange(a.shape(), 1, a.shape().length)));
    if (validation.isPresent()) {
      for (Map.Entry<String, ExampleArray> v : validation.get().inputs().entrySet()) {
        long[] shape = java.util.Arrays.copyOfRange(v.getValue().shape(), 1, v.getValue().shape().length);
        if (shapes.containsKey(v.getKey()) && !java.util.Arrays.equals(shape, shapes.get(v.getKey()))) {
          throw new JobException("validation input " + v.getKey() + " has examples of shape "
              + java.util.Arrays.toString(shape) + " and the training examples " + java.util.Arrays.toString(
              shapes.get(v.getKey())), Setting.VALIDATION, "pad both to the same length, as the model's loops run"
              + " over one length per training run");
        }
      }
    }
    List<String> changed = model.fixInputShapes(shapes);
    if (!changed.isEmpty()) {
      listener.message("Shapes: fixed by the data so that the model's loops unroll: " + String.join(", ", changed));
    }
  }

  FineTuneResult run(JobData.Arrays data) {
    SignatureInfo sig = model.info().selectedSignature();
    ArrayExamples examples = ArrayExamples.read(data, sig);
    Optional<ArrayExamples> validation = data.validation().map(v -> ArrayExamples.read(v, sig));
    boolean multi = !data.targets().byOutput().isEmpty();
    if (validation.isPresent() && !validation.get().targets().keySet().equals(examples.targets().keySet())) {
      throw new JobException("the validation targets are for " + names(validation.get()) + " and the training"
          + " targets for " + names(examples), Setting.VALIDATION, "give both for the same outputs");
    }
    if (multi) {
      checkOutputs(sig, examples.targets().keySet().stream().toList());
    } else if (!job.settings.outputLosses.isEmpty() || !job.settings.lossWeights.isEmpty()) {
      throw new JobException("losses and weights by output are for a job that trains several outputs",
          Setting.LOSS, "give targets by output, or one loss");
    }
    double split = job.settings.validationSplit.orElse(0);
    if (validation.isPresent() && split > 0) {
      throw new JobException("validation examples were given and a share of the examples to hold out",
          Setting.VALIDATION, "give one of them");
    }
    ArrayDataset.Options options = new ArrayDataset.Options(job.settings.batchSize.orElse(32), job.settings.shuffle, job.settings.seed);
    ArrayDataset train;
    Optional<ArrayDataset> val;
    try {
      train = ArrayDataset.ofOutputs(examples.inputs(), examples.targets(), options);
      val = validation.map(v -> ArrayDataset.ofOutputs(v.inputs(), v.targets(),
          new ArrayDataset.Options(options.batchSize(), false, job.settings.seed)));
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
    fixSequenceLengths(sig, examples, validation);
    Optional<Checkpoint.Info> resume = run.resume();
    ModelFamily family = ModelFamily.detect(model);
    long totalSteps = (long) job.settings.epochs * train.batchesPerEpoch();
    TrainingPlan plan;
    if (multi) {
      if (job.settings.newHead) {
        throw new JobException("a new head replaces the model's outputs, and the targets are for its outputs "
            + names(examples), Setting.HEAD, "train the outputs without a new head, or give the head's targets alone");
      }
      List<OutputLoss> outputs = new ArrayList<>();
      for (Map.Entry<String, NpyArray> t : examples.targets().entrySet()) {
        TensorSpec output = output(sig, t.getKey());
        LossSpec loss = job.settings.outputLosses.containsKey(t.getKey()) ? job.settings.outputLosses.get(t.getKey())
            : inferLoss(Optional.empty(), output, t.getValue(), " for " + t.getKey());
        checkActivation(loss, activation(Optional.empty(), output), " of " + t.getKey());
        checkTargets(targetsOf(examples, validation, t.getKey()), loss, width(output), " of " + t.getKey());
        outputs.add(new OutputLoss(t.getKey(), loss, job.settings.lossWeights.getOrDefault(t.getKey(), 1.0),
            job.settings.fromLogits && loss.classifies()));
      }
      plan = resume.map(Checkpoint.Info::plan).or(() -> job.settings.plan)
          .orElseGet(() -> run.plan(Optional.empty(), family.groups(), LossSpec.MSE, outputs, totalSteps));
    } else {
      NpyArray targets = examples.single();
      List<NpyArray> all = targetsOf(examples, validation, ArrayDataset.TARGETS);
      Optional<HeadSpec> head = job.settings.newHead ? Optional.of(head(family, integer(targets), all)) : Optional.empty();
      TensorSpec output = head.isPresent() ? null : onlyOutput(sig);
      LossSpec loss = resume.map(r -> r.plan().loss()).or(() -> job.settings.plan.map(TrainingPlan::loss))
          .orElseGet(() -> job.settings.loss.orElseGet(() -> inferLoss(head, output, targets, "")));
      checkActivation(loss, activation(head, output), "");
      checkTargets(all, loss, head.map(h -> (long) h.classes()).orElseGet(() -> width(output)), "");
      plan = resume.map(Checkpoint.Info::plan).or(() -> job.settings.plan)
          .orElseGet(() -> run.plan(head, family.groups(), loss, List.of(), totalSteps));
    }
    listener.message("Plan: " + new GsonBuilder().disableHtmlEscaping().create().toJson(PlanJson.toJson(plan)));
    try (Trainer trainer = new Trainer(model, plan)) {
      trainer.adapters().ifPresent(a -> listener.message("Adapters: " + a));
      JobRun.Loop loop = run.loop(trainer, resume, val.isPresent() ? "val_loss" : "loss", plan);
      List<Fit.Epoch> history = loop.fit(Fit.arrays(train), val.map(Fit::arrays));
      return loop.finish(history, Provenance.Task.arrays(data.inputs()), ArrayExamples.digest(data));
    }
  }

  private static boolean integer(NpyArray targets) {
    return !targets.dtype().startsWith("float");
  }

  private static List<NpyArray> targetsOf(ArrayExamples examples, Optional<ArrayExamples> validation, String key) {
    List<NpyArray> out = new ArrayList<>();
    out.add(examples.targets().get(key));
    validation.ifPresent(v -> out.add(v.targets().get(key)));
    return out;
  }

  private static String names(ArrayExamples e) {
    return e.targets().keySet().stream().filter(k -> !k.equals(ArrayDataset.TARGETS)).toList().toString();
  }

  private static void checkOutputs(SignatureInfo sig, List<String> keys) {
    for (String k : keys) {
      output(sig, k);
    }
  }

  private static TensorSpec output(SignatureInfo sig, String key) {
    return sig.outputs().stream().filter(t -> t.key().equals(key)).findFirst().orElseThrow(() -> new JobException(
        "signature " + sig.name() + " has no output '" + key + "'; it has " + keys(sig.outputs()), Setting.DATA,
        "name the targets by the signature's output keys"));
  }

  private static List<String> keys(List<TensorSpec> specs) {
    return specs.stream().map(TensorSpec::key).toList();
  }

  private static long width(TensorSpec output) {
    return output.shape().isEmpty() ? -1L : output.shape().get(output.shape().size() - 1);
  }

  private TensorSpec onlyOutput(SignatureInfo sig) {
    if (sig.outputs().size() != 1) {
      throw new JobException("signature " + sig.name() + " has outputs " + keys(sig.outputs()) + " and the job has one"
          + " array of targets", Setting.DATA, "give the targets of each output, as OUTPUT=TARGETS pairs");
    }
    return sig.outputs().get(0);
  }

  /** The new head: outputs and activation as set, or read from the targets and stated. */
  private HeadSpec head(ModelFamily family, boolean integer, List<NpyArray> targets) {
    HeadSpec.Activation activation = job.settings.headActivation.orElseGet(() -> job.settings.fromLogits ? HeadSpec.Activation.LINEAR
        : job.settings.loss.map(l -> switch (l) {
      case SPARSE_CATEGORICAL_CROSSENTROPY, CATEGORICAL_CROSSENTROPY -> HeadSpec.Activation.SOFTMAX;
      case BINARY_CROSSENTROPY -> HeadSpec.Activation.SIGMOID;
      default -> HeadSpec.Activation.LINEAR;
    }).orElse(integer ? HeadSpec.Activation.SOFTMAX : HeadSpec.Activation.LINEAR));
    int units;
    String why;
    if (job.settings.headUnits.isPresent()) {
      units = job.settings.headUnits.getAsInt();
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
      units = Math.toIntExact(rowWidth(targets.get(0)));
      why = "one per target value of an example";
    }
    HeadSpec spec = run.placed(new HeadSpec(Optional.empty(), HeadSpec.Pooling.AVERAGE, 0, 0, units, activation,
        job.settings.seed), family);
    listener.message(String.format(Locale.ROOT, "Head: %d %s output(s) (%s)", units, activation.kerasName(), why));
    return spec;
  }

  /** The activation the output ends in ({@code Softmax}, {@code Sigmoid}, or empty for anything else). */
  private Optional<String> activation(Optional<HeadSpec> head, TensorSpec output) {
    if (head.isPresent()) {
      return switch (head.get().activation()) {
        case SOFTMAX -> Optional.of("Softmax");
        case SIGMOID -> Optional.of("Sigmoid");
        case LINEAR -> Optional.empty();
      };
    }
    return LossChoice.finalActivation(model, model.info().selectedSignature().name(), output.key());
  }

  /**
   * A cross-entropy takes probabilities unless the job trains from logits; an output that ends in
   * no softmax (sigmoid) may well be logits, which the loss would read as probabilities: said in
   * one line, since the model may also form them another way. From logits, an output that ends in
   * a softmax (sigmoid) is refused: the loss would apply it twice.
   */
  private void checkActivation(LossSpec loss, Optional<String> activation, String ofWhat) {
    String wanted = switch (loss) {
      case SPARSE_CATEGORICAL_CROSSENTROPY, CATEGORICAL_CROSSENTROPY -> "Softmax";
      case BINARY_CROSSENTROPY -> "Sigmoid";
      default -> null;
    };
    if (job.settings.fromLogits) {
      if (activation.isPresent()) {
        throw new JobException("the output" + ofWhat + " ends in a " + activation.get().toLowerCase(Locale.ROOT)
            + ", so its values are probabilities, not logits", Setting.FROM_LOGITS,
            "train from probabilities: the loss would apply the " + activation.get().toLowerCase(Locale.ROOT)
            + " again");
      }
      return;
    }
    if (wanted != null && !activation.orElse("").equals(wanted)) {
      listener.warning("the output" + ofWhat + " ends in no " + wanted.toLowerCase(Locale.ROOT) + ", and "
          + loss.kerasName() + " takes its values as probabilities; if they are logits, train from logits (Keras's"
          + " from_logits=True)");
    }
  }

  /** The loss read from the targets and the output's activation, and stated; refused when open. */
  private LossSpec inferLoss(Optional<HeadSpec> head, TensorSpec output, NpyArray targets, String forWhat) {
    Optional<String> ends = activation(head, output);
    int outputRank = head.isPresent() ? 2 : output.shape().size();
    // Logits: of a softmax over several units, of a sigmoid for one.
    long units = head.map(h -> (long) h.classes()).orElseGet(() -> width(output));
    Optional<String> activation = job.settings.fromLogits && ends.isEmpty() ? Optional.of(units == 1 ? "Sigmoid" : "Softmax")
        : ends;
    LossChoice choice = LossChoice.infer(integer(targets), targets.shape().length, outputRank, activation)
        .orElseThrow(() -> new JobException("the targets" + forWhat + " (" + targets.dtype() + " "
            + java.util.Arrays.toString(targets.shape()) + ") and the output (" + activation.orElse("linear")
            + ") leave the loss open", Setting.LOSS,
            "name the loss: sparse_categorical_crossentropy for class labels, mean_squared_error for values"));
    listener.message("Loss" + forWhat + ": " + choice.loss().kerasName() + " (" + choice.reason()
        + (activation.equals(ends) ? "" : ", its values taken as logits") + "; name another to change it)");
    return choice.loss();
  }

  private static long rowWidth(NpyArray t) {
    long[] shape = t.shape();
    long width = 1;
    for (int i = 1; i < shape.length; i++) {
      width *= shape[i];
    }
    return width;
  }

  private static void checkTargets(List<NpyArray> targets, LossSpec loss, long outputWidth, String ofWhat) {
    for (NpyArray t : targets) {
      if (loss == LossSpec.SPARSE_CATEGORICAL_CROSSENTROPY) {
        double[] v = t.toDoubles();
        for (int i = 0; i < v.length; i++) {
          if (v[i] < 0 || v[i] != Math.rint(v[i]) || (outputWidth > 0 && v[i] >= outputWidth)) {
            throw new JobException("target " + i + ofWhat + " is " + v[i] + ", not a class index in [0, "
                + outputWidth + ")", Setting.DATA, "give labels 0 to " + (outputWidth - 1) + ", one per output");
          }
        }
      } else if (outputWidth > 0 && rowWidth(t) != outputWidth) {
        throw new JobException("each example has " + rowWidth(t) + " target value(s)" + ofWhat + " and the output has "
            + outputWidth, Setting.DATA, "give " + outputWidth + " target value(s) per example");
      }
    }
  }

  private static String specs(List<TensorSpec> specs) {
    return String.join(", ", specs.stream().map(t -> t.key() + " " + t.dtype() + " " + t.shapeText()).toList());
  }
}
