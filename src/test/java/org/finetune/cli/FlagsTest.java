package org.finetune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.finetune.hint.BadSettingException;
import org.finetune.hint.Setting;
import org.junit.jupiter.api.Test;

/** The command line words a library error's fix in its own flags, once, and keeps the problem as it is. */
class FlagsTest {
  @Test
  void aFixAboutASettingNamesItsFlagInsteadOfTheLibrarysWords() {
    BadSettingException e = new BadSettingException("the output o exists", Setting.EXPORT,
        "choose another or allow overwriting it");
    assertEquals("the output o exists; choose another or allow overwriting it", e.getMessage());
    assertEquals("the output o exists; choose another or add --overwrite", Flags.describe(e));
  }

  @Test
  void theDeviceProblemIsNamedByItsFlag() {
    BadSettingException e = new BadSettingException("device gpu:1: TensorFlow sees no such GPU", Setting.DEVICE,
        "without a GPU, run on device cpu");
    assertEquals("--device gpu:1: TensorFlow sees no such GPU; without a GPU, use --device cpu", Flags.describe(e));
  }

  @Test
  void aProblemThatSaysAllStaysAsItIs() {
    BadSettingException e = new BadSettingException("the plan is empty", Setting.VALIDATION, "");
    assertEquals("the plan is empty", Flags.describe(e));
    BadSettingException general = new BadSettingException("no text to train on", Setting.DATA, "give text files");
    assertEquals("no text to train on; give text files", Flags.describe(general));
  }

  @Test
  void everySettingWithAFlagIsWordedInFlags() {
    for (Setting s : Setting.values()) {
      String described = Flags.describe(new BadSettingException("p", s, "f"));
      boolean flagged = described.contains("--");
      boolean general = s == Setting.NONE || s == Setting.DATA || s == Setting.MODEL || s == Setting.RESUME
          || s == Setting.PLAN;
      assertTrue(flagged != general, s + ": " + described);
    }
  }
}
