#[allow(unused)] fn main(){}
