// Stand-in for the webapp's FormBuildError.tsx (a React component module): the same error, without React.
export class FormBuildError extends Error {
  constructor(public message: string) {
    super(message);
    this.name = "FormBuildError";
  }
}
