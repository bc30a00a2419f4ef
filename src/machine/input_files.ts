/** Reading the files the user names (kernel, initrd), with one clear line when one is unfit. */
export class InputFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InputFileError";
  }
}

export async function readInputFile(path: string, what: string): Promise<Uint8Array> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new InputFileError(`${what} ${path}: no such file`);
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new InputFileError(`${what} ${path}: permission denied`);
    }
    throw new InputFileError(`${what} ${path}: ${(e as Error).message}`);
  }
  if (info.isDirectory) throw new InputFileError(`${what} ${path}: is a directory, not a file`);
  if (info.size === 0) throw new InputFileError(`${what} ${path}: file is empty`);
  try {
    return await Deno.readFile(path);
  } catch (e) {
    throw new InputFileError(`${what} ${path}: cannot read: ${(e as Error).message}`);
  }
}
