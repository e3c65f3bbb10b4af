/**
 * Hints that travel with bad-input errors: which setting a fix concerns, so that each front end
 * (the command line, a service) can word the fix in its own terms. Library messages say the fix in
 * the library's words and never name a command-line flag.
 */
package org.finetune.hint;
