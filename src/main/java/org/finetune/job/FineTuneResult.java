package org.finetune.job;

import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;
import org.finetune.export.ExportResult;
import org.finetune.train.Fit;
import org.finetune.train.TrainingPlan;

/**
 * What a {@link FineTuneJob} did.
 *
 * @param history the epochs this run trained (not those before a resume), with their logs
 * @param startEpoch the epoch it started at (0, or where a resumed checkpoint stood)
 * @param epochs the epochs the job asked for in all
 * @param monitor the value judged for the best epoch ({@code val_loss}, or {@code loss} without validation)
 * @param bestEpoch the best epoch of this run by {@code monitor} (0-based; empty when none ran)
 * @param best its value
 * @param stoppedEarly whether early stopping ended the run (the best epoch's weights were then restored)
 * @param plan the plan trained
 * @param export what the export wrote, when the job exported
 */
public record FineTuneResult(List<Fit.Epoch> history, int startEpoch, int epochs, String monitor,
    OptionalInt bestEpoch, OptionalDouble best, boolean stoppedEarly, TrainingPlan plan, Optional<ExportResult> export) {
  public FineTuneResult {
    history = List.copyOf(history);
    Objects.requireNonNull(monitor, "monitor");
    Objects.requireNonNull(plan, "plan");
    Objects.requireNonNull(export, "export");
  }

  /** The last epoch's logs (empty when nothing ran). */
  public java.util.Map<String, Double> lastLogs() {
    return history.isEmpty() ? java.util.Map.of() : history.get(history.size() - 1).logs();
  }
}
